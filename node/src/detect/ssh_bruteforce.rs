//! SSH password guessing (Zeek's policy/protocols/ssh/detect-bruteforcing.zeek).
//!
//! Workers send each failed SSH login (an ssh.log record with `auth_success` F) keyed on the client to the proxy
//! pool; the owning proxy counts failures per client (forgotten `ssh.guessing_timeout` after the last one), keeps
//! the first five servers as samples, and raises `SSH::Password_Guessing` when the count reaches
//! `ssh.password_guesses_limit`, with Zeek's message and `sub`.

use super::{Analysis, Cx, Data, DetectConfig, EngineEvent, Event, Handler, Notice, Role, StateValue, arg_addr};

pub const LOGIN_FAILURE: &str = "SSH::login_failure";
const FAILURES: &str = "SSH::failures";
const SAMPLES: &str = "SSH::samples";
/// Zeek's reducer keeps this many samples.
const NUM_SAMPLES: usize = 5;

pub struct SshBruteforce;

impl Analysis for SshBruteforce {
    fn name(&self) -> &'static str {
        "ssh-bruteforce"
    }

    fn events(&self) -> &'static [&'static str] {
        &[LOGIN_FAILURE]
    }

    fn handler(&self, role: Role, _cfg: &DetectConfig) -> Option<Box<dyn Handler>> {
        match role {
            Role::Worker => Some(Box::new(SshWorker)),
            Role::Proxy => Some(Box::new(SshProxy)),
            _ => None,
        }
    }
}

struct SshWorker;

impl Handler for SshWorker {
    fn engine(&mut self, ev: &EngineEvent, cx: &mut Cx) {
        let EngineEvent::SshSession(s) = ev else { return };
        if s.auth_success == Some(false) {
            let args = vec![Data::Addr(s.id.orig_h), Data::Addr(s.id.resp_h)];
            cx.publish_hrw(Role::Proxy, &Data::Addr(s.id.orig_h), LOGIN_FAILURE, args);
        }
    }
}

/// Zeek's `sub`: `"Sampled servers: "` then each sample as `"%s%s %s"` with a comma before all but the first.
pub fn sampled_servers(samples: &[String]) -> String {
    let mut sub = String::from("Sampled servers: ");
    for (i, s) in samples.iter().enumerate() {
        sub.push_str(if i == 0 { " " } else { ", " });
        sub.push_str(s);
    }
    sub
}

struct SshProxy;

impl Handler for SshProxy {
    fn init(&mut self, cx: &mut Cx) {
        let timeout = cx.config().ssh.guessing_timeout;
        cx.state().define(FAILURES, timeout);
        cx.state().define(SAMPLES, timeout);
    }

    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        if ev.name != LOGIN_FAILURE {
            return;
        }
        let (Some(client), Some(server)) = (arg_addr(ev, 0), arg_addr(ev, 1)) else { return };
        let key = Data::Addr(client);
        let now = cx.now();
        let failures = cx.state().incr(FAILURES, &key, 1, now);
        let mut samples = match cx.state().get(SAMPLES, &key) {
            Some(StateValue::Value(Data::Vector(v))) => v.clone(),
            _ => Vec::new(),
        };
        if samples.len() < NUM_SAMPLES {
            samples.push(Data::Str(server.to_string()));
        }
        cx.state().put(SAMPLES, &key, Data::Vector(samples.clone()), now);
        if failures == cx.config().ssh.password_guesses_limit {
            let samples: Vec<String> = samples.iter().filter_map(Data::as_str).map(str::to_string).collect();
            let msg = format!("{client} appears to be guessing SSH passwords (seen in {failures} connections).");
            cx.notice(
                Notice::new("SSH::Password_Guessing", msg)
                    .sub_message(sampled_servers(&samples))
                    .src(client)
                    .identifier(client.to_string()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_message_matches_zeeks_baseline() {
        let s = vec!["192.168.56.103".to_string(); 5];
        assert_eq!(
            sampled_servers(&s),
            "Sampled servers:  192.168.56.103, 192.168.56.103, 192.168.56.103, 192.168.56.103, 192.168.56.103"
        );
    }
}
