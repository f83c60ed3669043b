//! Successful `SITE EXEC` commands (Zeek's policy/protocols/ftp/detect.zeek).
//!
//! Each worker watches its own FTP sessions: a reply with a 2xx code to a `SITE` command whose argument contains
//! `exec` (any case) raises `FTP::Site_Exec_Success` about the connection. No cluster state: the notice framework's
//! suppression (identifier `cat(orig_h, resp_h, "SITE EXEC")`) keeps it to one per client and server.

use super::{Analysis, Cx, DetectConfig, EngineEvent, Handler, Notice, Role};
use crate::analyzers::ftp::FtpReply;

pub const SITE_EXEC_SUCCESS: &str = "FTP::Site_Exec_Success";

pub struct FtpSiteExec;

impl Analysis for FtpSiteExec {
    fn name(&self) -> &'static str {
        "ftp-site-exec"
    }

    fn events(&self) -> &'static [&'static str] {
        &[]
    }

    fn handler(&self, role: Role, _cfg: &DetectConfig) -> Option<Box<dyn Handler>> {
        (role == Role::Worker).then(|| Box::new(SiteExecWorker) as Box<dyn Handler>)
    }
}

/// The script's test: `parse_ftp_reply_code(code)$x == 2`, the command is `SITE` and `/[Ee][Xx][Ee][Cc]/` is in
/// its argument.
pub fn is_site_exec_success(reply: &FtpReply) -> bool {
    reply.code / 100 == 2 && reply.cmd == "SITE" && reply.arg.to_ascii_lowercase().contains("exec")
}

/// The notice the script raises for `reply` (`$conn=c`, so uid, endpoints and port come from the connection).
pub fn site_exec_notice(reply: &FtpReply) -> Notice {
    let id = reply.id;
    Notice::new(SITE_EXEC_SUCCESS, format!("FTP command: {} {}", reply.cmd, reply.arg))
        .conn(&reply.uid, id)
        .identifier(format!("{}{}SITE EXEC", id.orig_h, id.resp_h))
}

struct SiteExecWorker;

impl Handler for SiteExecWorker {
    fn engine(&mut self, ev: &EngineEvent, cx: &mut Cx) {
        if let EngineEvent::FtpReply(reply) = ev
            && is_site_exec_success(reply)
        {
            cx.notice(site_exec_notice(reply));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::{ConnId, Proto};
    use crate::logs::Value;

    fn reply(cmd: &str, arg: &str, code: u64) -> FtpReply {
        let id = ConnId {
            orig_h: "10.0.0.1".parse().unwrap(),
            orig_p: 40000,
            resp_h: "10.0.0.2".parse().unwrap(),
            resp_p: 21,
            proto: Proto::Tcp,
        };
        FtpReply { ts: 10.0, uid: "CftpA".into(), id, cmd: cmd.into(), arg: arg.into(), code }
    }

    #[test]
    fn only_a_2xx_reply_to_site_with_exec_in_its_argument() {
        assert!(is_site_exec_success(&reply("SITE", "EXEC /bin/sh -c id", 200)));
        assert!(is_site_exec_success(&reply("SITE", "exec ls", 250)));
        // The script matches `exec` anywhere in the argument, not only at its start.
        assert!(is_site_exec_success(&reply("SITE", "CPFR ExEc", 299)));
        assert!(!is_site_exec_success(&reply("SITE", "EXEC id", 500)));
        assert!(!is_site_exec_success(&reply("SITE", "EXEC id", 199)));
        assert!(!is_site_exec_success(&reply("SITE", "EXEC id", 300)));
        assert!(!is_site_exec_success(&reply("SITE", "CHMOD 755 x", 200)));
        assert!(!is_site_exec_success(&reply("STOR", "exec.txt", 226)));
    }

    #[test]
    fn notice_names_the_command_and_the_connection() {
        let n = site_exec_notice(&reply("SITE", "EXEC id", 200));
        let r = n.log_record();
        assert_eq!(r.get("note"), Some(&Value::Enum(SITE_EXEC_SUCCESS)));
        assert_eq!(r.get("msg"), Some(&Value::str("FTP command: SITE EXEC id")));
        assert_eq!(r.get("uid"), Some(&Value::str("CftpA")));
        assert_eq!(r.get("src"), Some(&Value::Addr("10.0.0.1".parse().unwrap())));
        assert_eq!(r.get("dst"), Some(&Value::Addr("10.0.0.2".parse().unwrap())));
        assert_eq!(r.get("p"), Some(&Value::Port(21)));
        assert_eq!(r.get("proto"), Some(&Value::Enum("tcp")));
        assert_eq!(n.identifier.as_deref(), Some("10.0.0.110.0.0.2SITE EXEC"));
    }
}
