//! SMB1 and SMB2/3 over TCP (445 and 139) to smb_mapping.log and smb_files.log, as Zeek's binpac analyzer
//! (src/analyzer/protocol/smb/: SMB.cc, smb.pac, smb1-protocol.pac, smb1-com-*.pac, smb2-protocol.pac,
//! smb2-com-*.pac) and the scripts base/protocols/smb/main.zeek, smb1-main.zeek, smb2-main.zeek and consts.zeek do
//! it; SMB1 is in [`smb1`], which shares this module's framing, script state and helpers.
//!
//! SMB.cc starts on a delivery whose bytes 4..8 are `\xffSMB` or `\xfeSMB` (an NBSS header, then an SMB1 or SMB2
//! header) and drops deliveries until one is: the same resync follows a content gap or a binpac exception, which
//! also empties both directions' buffers. binpac frames each direction in NBSS messages (a type byte and a 24-bit
//! big-endian length); a session message (type 0) holds one SMB message, anything else is skipped. After the
//! protocol id, `\xfeSMB` is SMB2 (a 64-byte header, then the command's request or response, or an error response
//! as `is_error_response` decides), `\xfdSMB` the SMB3 transform header of an encrypted message, `\xffSMB` SMB1 (its
//! header and AndX chains, [`smb1`]) and anything else is nothing. A record that ends past its NBSS message is
//! binpac's `out_of_bound`: a violation. SMB.cc confirms after its third delivery that raised no exception. The security blobs of negotiate responses and of
//! session setup requests and responses go to the GSSAPI and NTLM analyzers (`smb-gssapi.pac`'s `forward_gssapi`,
//! [`super::gssapi::Auth`]), which write ntlm.log (and kerberos.log for Kerberos tokens) and add their services.
//!
//! The scripts keep per connection a command per message id (`pending_cmds`, dropped at its non-pending response),
//! trees by tree id (`tid_map`) and files by file id (`fid_map`, persistent + volatile). A tree connect request
//! (tree id 0) gets a fresh tree whose `path` is the request's; its response files it under the new tree id, sets
//! `share_type` (DISK, PIPE, PRINT, `unknown-N`) and writes smb_mapping.log. A create request names the command's
//! file (`<share_root>` for an empty name) and picks the action from the tree's share type (FILE_OPEN, PIPE_OPEN,
//! PRINT_OPEN); its response files it by id with size, path and MAC times (when the modification time is after
//! 1970) and writes it. Reads, writes, closes and set-info requests (attributes, rename, delete) take the filed
//! record and set their action; a close drops it from the map. A record is written when it has a name and its action
//! is in `logged_file_actions` (FILE_OPEN, FILE_RENAME, FILE_DELETE, PRINT_OPEN, PRINT_CLOSE), once per
//! connection for the same action, name, path, size and times within three minutes (`recent_files`).
//!
//! Named pipes (smb-pipe.pac, smb2-com-write.pac, smb2-com-read.pac, smb2-com-ioctl.pac): binpac marks a tree a
//! pipe at a tree connect response of share type PIPE or a create of a name in `SMB::pipe_filenames`, and unmarks
//! it at its disconnect. A write request on a pipe tree hands its data to DCE_RPC, a read response on one (the tree
//! its request named) the data with the request's file id, and an ioctl FSCTL_PIPE_TRANSCEIVE, whatever the tree,
//! its request's input and its response's output; each file id has its own DCE_RPC analyzer
//! ([`NamedPipes`], `SMB::max_dce_rpc_analyzers` of them), dropped at the file's close. Pipe actions are not in
//! `logged_file_actions`: pipes make no smb_files.log rows.
//!
//! File contents (smb2-com-read.pac, smb2-com-write.pac, smb2-com-close.pac, files.zeek): the data of a read
//! response (at its request's offset) or a write request (at its own) on a tree that is not a pipe goes to the file
//! framework's file named by `SMB::get_file_handle` (the record's path, name and modification time; none without a
//! name or path), a [`FileTransfer`] with source `SMB` that puts the bytes in order by their offsets. A file new to
//! the connection gives the record its `fuid` (`file_over_new_connection`, which logs the record again), and takes the
//! record's size as `total_bytes` and its name as `filename`; it ends when later bytes reach that size, at a close
//! request for its record, or with the connection (timed out, as the file framework ends a file nothing closed),
//! each time writing files.log (and `file_state_remove` the record).

pub mod parse;
pub mod smb1;

use std::collections::{HashMap, HashSet};

use super::dce_rpc::NamedPipes;
use super::files::FileTransfer;
use super::gssapi::Auth;
use super::krb::KERBEROS_LOG;
use super::ntlm::NTLM_LOG;
use super::{Analyzer, AnalyzerSpec, Ctx, Proto};
use crate::logs::{Schema, Value, bytes_to_log_string, conn_fields, f};
use parse::{Body, Header, MacTimes, SmbError, Text};

pub static MAPPING_LOG: Schema = Schema {
    path: "smb_mapping",
    fields: conn_fields![
        f("path", "string"),
        f("service", "string"),
        f("native_file_system", "string"),
        f("share_type", "string"),
    ],
};

pub static FILES_LOG: Schema = Schema {
    path: "smb_files",
    fields: conn_fields![
        f("fuid", "string"),
        f("action", "enum"),
        f("path", "string"),
        f("name", "string"),
        f("size", "count"),
        f("prev_name", "string"),
        f("times.modified", "time"),
        f("times.accessed", "time"),
        f("times.created", "time"),
        f("times.changed", "time"),
    ],
};

/// Zeek's `SMB` analyzer, registered for main.zeek's ports; conn.log's service is `smb`.
pub static SPEC: AnalyzerSpec = AnalyzerSpec {
    name: "smb",
    tcp_ports: &[139, 445],
    udp_ports: &[],
    detect: None,
    new: |_| Box::<Smb>::default(),
    schemas: &[&FILES_LOG, &MAPPING_LOG, &NTLM_LOG, &KERBEROS_LOG],
};

/// How much of one NBSS message is kept for parsing: every record the logs read sits at a message's start, and
/// what follows (security blobs, query buffers) only has its bounds checked against the message's length. Reads and
/// writes are kept up to [`MAX_DATA_KEPT`]; their data past that is not handed on.
pub const MAX_KEPT: usize = 64 * 1024;

/// How much of a read or write message is kept: its data goes to DCE_RPC or the file framework whole, as binpac,
/// which buffers the whole message, hands it on. 8 MiB is the largest read and write size Windows negotiates.
pub const MAX_DATA_KEPT: usize = 8 * 1024 * 1024 + 4096;

/// `FSCTL_PIPE_TRANSCEIVE`: the only ioctl whose buffers smb2-com-ioctl.pac hands to DCE_RPC.
const FSCTL_PIPE_TRANSCEIVE: u32 = 0x0011_c017;

/// SMB.cc confirms at this many deliveries parsed without an exception.
const CONFIRM_AFTER: u32 = 3;

/// `SMB::max_pending_messages`: at this many requests awaiting a response binpac drops its tree id map and raises
/// `smb2_discarded_messages_state`, on which the script clears the connection's state
/// (`enable_clear_script_state`). The node applies the same bound to the file and tree maps.
const MAX_PENDING: usize = 1000;

/// `recent_files`' `&read_expire`.
const RECENT_EXPIRE: f64 = 180.0;

/// `SMB::pipe_filenames` (consts.zeek): file names that mark a tree as a pipe when its mapping was not seen.
const PIPE_FILENAMES: &[&[u8]] =
    &[b"spoolss", b"winreg", b"samr", b"srvsvc", b"netdfs", b"lsarpc", b"wkssvc", b"MsFteWds"];

const SMB1: u32 = 0xff53_4d42;
const SMB2: u32 = 0xfe53_4d42;
const SMB3: u32 = 0xfd53_4d42;

/// `SMB2_transform_header` after the protocol id: signature, nonce, size, reserved, flags, session id.
const TRANSFORM_HEADER: usize = 52;

/// `SMB::Action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    FileRead,
    FileWrite,
    FileOpen,
    FileClose,
    FileDelete,
    FileRename,
    FileSetAttribute,
    PipeRead,
    PipeWrite,
    PipeOpen,
    PipeClose,
    PrintRead,
    PrintWrite,
    PrintOpen,
    PrintClose,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::FileRead => "SMB::FILE_READ",
            Action::FileWrite => "SMB::FILE_WRITE",
            Action::FileOpen => "SMB::FILE_OPEN",
            Action::FileClose => "SMB::FILE_CLOSE",
            Action::FileDelete => "SMB::FILE_DELETE",
            Action::FileRename => "SMB::FILE_RENAME",
            Action::FileSetAttribute => "SMB::FILE_SET_ATTRIBUTE",
            Action::PipeRead => "SMB::PIPE_READ",
            Action::PipeWrite => "SMB::PIPE_WRITE",
            Action::PipeOpen => "SMB::PIPE_OPEN",
            Action::PipeClose => "SMB::PIPE_CLOSE",
            Action::PrintRead => "SMB::PRINT_READ",
            Action::PrintWrite => "SMB::PRINT_WRITE",
            Action::PrintOpen => "SMB::PRINT_OPEN",
            Action::PrintClose => "SMB::PRINT_CLOSE",
        }
    }

    /// `SMB::logged_file_actions`' default.
    fn logged(self) -> bool {
        matches!(
            self,
            Action::FileOpen | Action::FileRename | Action::FileDelete | Action::PrintOpen | Action::PrintClose
        )
    }
}

/// `SMB2::share_types`, with its `&default`.
fn share_type_name(share_type: u8) -> String {
    match share_type {
        1 => "DISK".into(),
        2 => "PIPE".into(),
        3 => "PRINT".into(),
        n => format!("unknown-{n}"),
    }
}

/// `SMB::TreeInfo` (only SMB1's tree connect response sets `service` and `native_file_system`).
#[derive(Debug, Clone, PartialEq)]
struct TreeInfo {
    ts: f64,
    path: Option<String>,
    service: Option<String>,
    native_file_system: Option<String>,
    share_type: String,
}

impl TreeInfo {
    fn new(ts: f64) -> Self {
        TreeInfo { ts, path: None, service: None, native_file_system: None, share_type: "DISK".into() }
    }

    /// The smb_mapping.log record.
    fn record(&self, ctx: &Ctx) -> Vec<Value> {
        let mut v = ctx.conn_columns(self.ts);
        v.extend([
            Value::opt_str(self.path.clone()),
            Value::opt_str(self.service.clone()),
            Value::opt_str(self.native_file_system.clone()),
            Value::str(self.share_type.clone()),
        ]);
        v
    }
}

/// `SMB::FileInfo` (`fuid` set by `file_over_new_connection` once the file's data was seen).
#[derive(Debug, Clone, PartialEq)]
struct FileInfo {
    ts: f64,
    /// Which filing this is (not logged): a command that filed or found a record under a file id refers to that
    /// record, which Zeek keeps by reference even after the id's entry is replaced.
    serial: u64,
    fuid: Option<String>,
    action: Option<Action>,
    path: Option<String>,
    name: Option<String>,
    size: u64,
    prev_name: Option<String>,
    times: Option<MacTimes>,
}

impl FileInfo {
    fn new(ts: f64) -> Self {
        FileInfo {
            ts,
            serial: 0,
            fuid: None,
            action: None,
            path: None,
            name: None,
            size: 0,
            prev_name: None,
            times: None,
        }
    }

    fn record(&self, ctx: &Ctx) -> Vec<Value> {
        let mut v = ctx.conn_columns(self.ts);
        v.push(Value::opt_str(self.fuid.clone()));
        v.push(self.action.map_or(Value::Unset, |a| Value::Enum(a.name())));
        v.push(Value::opt_str(self.path.clone()));
        v.push(Value::opt_str(self.name.clone()));
        v.push(Value::Count(self.size));
        v.push(Value::opt_str(self.prev_name.clone()));
        match self.times {
            Some(t) => v.extend([t.modified, t.accessed, t.created, t.changed].map(Value::Time)),
            None => v.extend([Value::Unset, Value::Unset, Value::Unset, Value::Unset]),
        }
        v
    }

    /// `SMB::get_file_handle`: what names the file's contents to the file framework (the tree's path, the name and
    /// the modification time; the connection's hosts are the same for all of a connection's files); `None` without
    /// a name or path, where the data goes to no file.
    fn handle(&self) -> Option<FileHandle> {
        if self.name.is_none() && self.path.is_none() {
            return None;
        }
        Some((self.path.clone(), self.name.clone(), self.times.map_or(0, |t| t.modified.to_bits())))
    }

    /// `write_file_log`'s identity of a record for `recent_files`: everything logged but the access time.
    fn ident(&self, times: &MacTimes) -> String {
        format!(
            "{:?}|{:?}|{:?}|{:?}|{}|{}|{}|{}",
            self.action,
            self.fuid,
            self.name,
            self.path,
            self.size,
            times.modified.to_bits(),
            times.created.to_bits(),
            times.changed.to_bits()
        )
    }
}

/// A file's handle: path, name and modification time.
type FileHandle = (Option<String>, Option<String>, u64);

/// A script record the command refers to: its own, or the one filed under an id (Zeek's records are shared
/// references; a filed one is reached through its map).
#[derive(Debug, Clone, PartialEq)]
enum Ref<T, K> {
    Own(T),
    Filed(K),
}

/// `SMB::CmdInfo`, as far as the logs need it.
#[derive(Debug, Clone, PartialEq)]
struct Cmd {
    file: Ref<FileInfo, u64>,
    tree: Option<Ref<TreeInfo, u32>>,
    create_options: u32,
    /// The serial of the filed record `file` refers to.
    file_serial: u64,
}

/// The connection's `SMB::State` and the binpac connection's own maps.
#[derive(Debug, Default)]
struct State {
    pending: HashMap<u64, Cmd>,
    fid_map: HashMap<u64, FileInfo>,
    tid_map: HashMap<u32, TreeInfo>,
    recent: HashMap<String, f64>,
    /// binpac's `smb2_request_tree_id`: the tree id of each request awaiting its response.
    request_tree: HashMap<u64, u32>,
    /// binpac's trees known to be pipes (`set_tree_is_pipe`).
    pipes: HashSet<u32>,
    /// binpac's `smb2_read_fids` and `smb2_read_offsets`: each read request's file id and offset by message id.
    read_fids: HashMap<u64, u64>,
    read_offsets: HashMap<u64, u64>,
    /// binpac's `smb2_ioctl_fids`: each ioctl request's file id by message id.
    ioctl_fids: HashMap<u64, u64>,
    /// The last filing's serial.
    next_serial: u64,
    /// smb-pipe.pac's DCE_RPC analyzers by file id (`fid_to_analyzer_map`) and their script state.
    named_pipes: NamedPipes,
    /// smb-gssapi.pac's GSSAPI and NTLM analyzers (and what GSSAPI instantiates), whose record the pipes' DCE_RPC
    /// analyzers share: a connection has one `c$ntlm`.
    auth: Auth,
    /// The file framework's files of this connection by their handle (`get_file_handle`), numbered in the order
    /// they began.
    files: HashMap<FileHandle, (u64, FileTransfer)>,
    files_begun: u64,
    /// binpac's `is_file_a_pipe`: whether each SMB1 transaction request (by multiplex id) went to a pipe.
    smb1_file_a_pipe: HashMap<u16, bool>,
    /// smb1-main.zeek's `c$smb_state$current_file`, which SMB1 read responses give their data to.
    smb1_current_file: Option<smb1::CurrentFile>,
}

impl State {
    /// `smb2_discarded_messages_state` with `enable_clear_script_state`.
    fn clear(&mut self) {
        self.pending.clear();
        self.fid_map.clear();
        self.tid_map.clear();
        self.recent.clear();
    }

    fn tree<'a>(&'a self, cmd: &'a Cmd) -> Option<&'a TreeInfo> {
        match cmd.tree.as_ref()? {
            Ref::Own(t) => Some(t),
            Ref::Filed(tid) => self.tid_map.get(tid),
        }
    }

    fn tree_mut<'a>(&'a mut self, cmd: &'a mut Cmd) -> Option<&'a mut TreeInfo> {
        match cmd.tree.as_mut()? {
            Ref::Own(t) => Some(t),
            Ref::Filed(tid) => self.tid_map.get_mut(tid),
        }
    }

    fn file_mut<'a>(&'a mut self, cmd: &'a mut Cmd) -> Option<&'a mut FileInfo> {
        match &mut cmd.file {
            Ref::Own(f) => Some(f),
            Ref::Filed(fid) => self.fid_map.get_mut(fid),
        }
    }

    /// `SMB2_Header`'s `is_pipe`: whether the request's tree (for a response, the tree its request named) is a pipe.
    fn is_pipe(&self, h: &Header, is_orig: bool) -> bool {
        let tree = if is_orig { Some(h.tree_id) } else { self.request_tree.get(&h.message_id).copied() };
        self.pipes.contains(&tree.unwrap_or(0))
    }

    /// A message-id map of binpac's at `SMB::max_pending_messages`: it is emptied, and its
    /// `smb2_discarded_messages_state` clears the script state.
    fn bound(&mut self, map: fn(&mut State) -> &mut HashMap<u64, u64>) {
        if map(self).len() >= MAX_PENDING {
            map(self).clear();
            self.clear();
        }
    }

    /// `forward_dce_rpc`, when the DCE_RPC analyzer is enabled and the data was kept.
    fn forward_dce_rpc(&mut self, ctx: &mut Ctx, data: Option<&[u8]>, fid: u64, is_orig: bool) {
        if let Some(data) = data
            && ctx.cfg.is_enabled("dce_rpc")
        {
            self.named_pipes.deliver(ctx, fid, is_orig, data, &mut self.auth);
        }
    }

    /// `file_mgr->DataIn` for the command's file: `data` at `offset`, in a file found by the record's handle (none
    /// without a name or path). A file new to the connection raises `file_over_new_connection`: the record takes its
    /// fuid, the file the record's size as `total_bytes` and its name as `filename`, and the record is logged again.
    /// A file whose bytes reach `total_bytes` at a later delivery is complete and removed (`file_state_remove`: the
    /// record once more).
    fn file_data(&mut self, ctx: &mut Ctx, cmd: &mut Cmd, offset: u64, data: &[u8], is_orig: bool) {
        let Some(record) = self.referenced_file_mut(cmd) else { return };
        let Some(handle) = record.handle() else { return };
        if let Some((_, file)) = self.files.get_mut(&handle) {
            file.data_at(ctx.ts, offset, data);
            if file.is_complete() {
                self.end_file(ctx, cmd, Some(handle));
            }
            return;
        }
        if self.files.len() >= MAX_PENDING {
            self.end_all_files(ctx, false);
        }
        // The first data goes in before the events the new file raises are handled, so the size they announce
        // cannot complete the file at once (a file read whole in one response ends at its close).
        let mut file = FileTransfer::new(ctx, "SMB", is_orig);
        file.data_at(ctx.ts, offset, data);
        let Some(record) = self.referenced_file_mut(cmd) else { return };
        record.fuid = Some(file.fuid.clone());
        if record.size > 0 {
            file.total_bytes = Some(record.size);
        }
        file.filename = record.name.clone();
        let record = record.clone();
        self.write_file_log(ctx, &record);
        self.files_begun += 1;
        self.files.insert(handle, (self.files_begun, file));
    }

    /// `file_mgr->EndOfFile` (or the removal of a complete file): the file of `handle` (the command's file's by
    /// default) writes its files.log record, and `file_state_remove` logs the command's file record once more.
    fn end_file(&mut self, ctx: &mut Ctx, cmd: &mut Cmd, handle: Option<FileHandle>) {
        let Some(handle) = handle.or_else(|| self.referenced_file_mut(cmd).and_then(|f| f.handle())) else { return };
        let Some((_, file)) = self.files.remove(&handle) else { return };
        file.finish(ctx);
        if let Some(record) = self.referenced_file_mut(cmd) {
            let record = record.clone();
            self.write_file_log(ctx, &record);
        }
    }

    /// Every open file ends: at the connection's end, as the file framework's timeout ends a file nothing closed
    /// (`file_timeout` sets `timedout`), or when too many are open at once.
    fn end_all_files(&mut self, ctx: &mut Ctx, timedout: bool) {
        let mut files: Vec<(u64, FileTransfer)> = self.files.drain().map(|(_, f)| f).collect();
        files.sort_by_key(|(begun, _)| *begun);
        for (_, mut file) in files {
            file.timedout = timedout;
            file.finish(ctx);
        }
    }

    /// binpac's `set_tree_is_pipe`, bounded like the maps.
    fn mark_pipe(&mut self, tid: u32) {
        if self.pipes.len() >= MAX_PENDING {
            self.pipes.clear();
        }
        self.pipes.insert(tid);
    }

    /// `SMB::set_current_file`: the command's file becomes the one filed under `fid`, filing the command's own
    /// first if there is none.
    fn set_current_file(&mut self, cmd: &mut Cmd, fid: u64, ts: f64) {
        if !self.fid_map.contains_key(&fid) {
            let file = match std::mem::replace(&mut cmd.file, Ref::Filed(fid)) {
                Ref::Own(f) => f,
                Ref::Filed(other) => self.fid_map.get(&other).cloned().unwrap_or_else(|| FileInfo::new(ts)),
            };
            if self.fid_map.len() >= MAX_PENDING {
                self.fid_map.clear();
            }
            self.next_serial += 1;
            self.fid_map.insert(fid, FileInfo { serial: self.next_serial, ..file });
        }
        cmd.file = Ref::Filed(fid);
        cmd.file_serial = self.fid_map.get(&fid).map_or(0, |f| f.serial);
    }

    /// The command's file as Zeek's reference holds it: its own, or the filed record it found, if that is still
    /// filed (a record whose entry was replaced since is not reachable here).
    fn referenced_file_mut<'a>(&'a mut self, cmd: &'a mut Cmd) -> Option<&'a mut FileInfo> {
        let serial = cmd.file_serial;
        match &mut cmd.file {
            Ref::Own(f) => Some(f),
            Ref::Filed(fid) => self.fid_map.get_mut(fid).filter(|f| f.serial == serial),
        }
    }

    /// The `switch` on the current tree's share type; `None` where there is no tree (a script error in Zeek).
    fn action(&self, cmd: &Cmd, [disk, pipe, print]: [Action; 3]) -> Option<Action> {
        Some(match self.tree(cmd)?.share_type.as_str() {
            "PIPE" => pipe,
            "PRINT" => print,
            _ => disk,
        })
    }

    /// `SMB::write_file_log`.
    fn write_file_log(&mut self, ctx: &mut Ctx, file: &FileInfo) {
        let Some(action) = file.action else { return };
        if file.name.is_none() || !action.logged() {
            return;
        }
        if let Some(times) = &file.times {
            let ident = file.ident(times);
            if let Some(seen) = self.recent.get_mut(&ident)
                && ctx.ts - *seen < RECENT_EXPIRE
            {
                *seen = ctx.ts;
                return;
            }
            if self.recent.len() >= MAX_PENDING {
                self.recent.retain(|_, seen| ctx.ts - *seen < RECENT_EXPIRE);
                if self.recent.len() >= MAX_PENDING {
                    self.recent.clear();
                }
            }
            self.recent.insert(ident, ctx.ts);
        }
        ctx.log(&FILES_LOG, file.record(ctx));
    }

    /// `smb2_message` at priority 5: the command of this message id, its tree filed under the header's tree id.
    fn begin(&mut self, ts: f64, h: &Header, is_orig: bool) -> Cmd {
        // binpac's `proc_smb2_message`.
        if is_orig {
            if self.request_tree.len() >= MAX_PENDING {
                self.request_tree.clear();
                self.clear();
            }
            self.request_tree.insert(h.message_id, h.tree_id);
        } else if h.status != parse::STATUS_PENDING {
            self.request_tree.remove(&h.message_id);
        }
        let mut cmd = self.pending.remove(&h.message_id).unwrap_or_else(|| Cmd {
            file: Ref::Own(FileInfo::new(ts)),
            tree: None,
            create_options: 0,
            file_serial: 0,
        });
        let tid = h.tree_id;
        if tid > 0 {
            match cmd.tree.take() {
                Some(Ref::Own(tree)) => {
                    self.tid_map.insert(tid, tree);
                }
                Some(Ref::Filed(other)) if other != tid => {
                    let tree = self.tid_map.get(&other).cloned().unwrap_or_else(|| TreeInfo::new(ts));
                    self.tid_map.insert(tid, tree);
                }
                _ => {
                    if self.tid_map.len() >= MAX_PENDING && !self.tid_map.contains_key(&tid) {
                        self.tid_map.clear();
                    }
                    self.tid_map.entry(tid).or_insert_with(|| TreeInfo::new(ts));
                }
            }
            cmd.tree = Some(Ref::Filed(tid));
        } else {
            cmd.tree = Some(Ref::Own(TreeInfo::new(ts)));
        }
        cmd
    }

    /// `smb2_message` at priority -5: a command stays pending until a response that is not `PENDING`.
    fn end(&mut self, h: &Header, is_orig: bool, cmd: Cmd) {
        if is_orig || h.status == parse::STATUS_PENDING {
            self.pending.insert(h.message_id, cmd);
        }
    }

    /// The events of one message's body, in the order the scripts handle them; a pipe's data goes to DCE_RPC before
    /// the record's own event, as its `pipe_proc` comes before `proc`.
    fn body(&mut self, ctx: &mut Ctx, h: &Header, is_pipe: bool, cmd: &mut Cmd, body: Body) {
        use Action::*;
        match body {
            // Forwarded by the analyzer (`Smb::smb2`).
            Body::Nothing | Body::SecurityBlob { .. } => {}
            Body::TreeConnectRequest { path } => {
                let path = text(ctx, path);
                if let Some(tree) = self.tree_mut(cmd) {
                    tree.path = Some(path);
                }
            }
            Body::TreeConnectResponse { share_type } => {
                if share_type == 2 {
                    self.mark_pipe(h.tree_id);
                }
                if let Some(tree) = self.tree_mut(cmd) {
                    tree.share_type = share_type_name(share_type);
                    let record = tree.record(ctx);
                    ctx.log(&MAPPING_LOG, record);
                }
            }
            Body::TreeDisconnectRequest => {
                // binpac's `unset_tree_is_pipe`.
                self.pipes.remove(&h.tree_id);
                if self.tid_map.remove(&h.tree_id).is_some() {
                    cmd.tree = None;
                }
            }
            Body::CreateRequest { name, create_options } => {
                let raw = name.bytes.clone();
                let name = text(ctx, name);
                if !self.pipes.contains(&h.tree_id) && PIPE_FILENAMES.contains(&raw.as_slice()) {
                    // `smb_pipe_connect_heuristic`.
                    self.mark_pipe(h.tree_id);
                    if let Some(tree) = self.tree_mut(cmd) {
                        tree.path = Some("<unknown>".into());
                        tree.share_type = "PIPE".into();
                    }
                }
                let action = self.action(cmd, [FileOpen, PipeOpen, PrintOpen]);
                cmd.create_options = create_options;
                if let Some(file) = self.file_mut(cmd) {
                    file.name = Some(if name.is_empty() { "<share_root>".into() } else { name });
                    if action.is_some() {
                        file.action = action;
                    }
                }
            }
            Body::CreateResponse { fid, size, times } => {
                self.set_current_file(cmd, fid, ctx.ts);
                let path = self.tree(cmd).and_then(|t| t.path.clone());
                let Some(file) = self.fid_map.get_mut(&fid) else { return };
                file.size = size;
                if path.is_some() {
                    file.path = path;
                }
                if times.modified > 0.0 {
                    file.times = Some(times);
                }
                let file = file.clone();
                self.write_file_log(ctx, &file);
                if h.status == 0 && cmd.create_options & 0x1000 != 0 {
                    // FILE_DELETE_ON_CLOSE: the script raises `smb2_file_delete`.
                    self.file_event(ctx, cmd, fid, Some([FileDelete; 3]));
                }
            }
            Body::ReadRequest { fid, offset } => {
                self.file_event(ctx, cmd, fid, Some([FileRead, PipeRead, PrintRead]));
                self.bound(|s| &mut s.read_fids);
                self.bound(|s| &mut s.read_offsets);
                self.read_fids.insert(h.message_id, fid);
                self.read_offsets.insert(h.message_id, offset);
            }
            Body::ReadResponse { data } => {
                // `get_file_id` (kept while the response is PENDING; 0 for an unknown request), then `pipe_proc`.
                let pending = h.status == parse::STATUS_PENDING;
                let fid = if pending {
                    self.read_fids.get(&h.message_id).copied()
                } else {
                    self.read_fids.remove(&h.message_id)
                };
                if is_pipe {
                    self.forward_dce_rpc(ctx, data, fid.unwrap_or(0), false);
                }
                // `proc_smb2_read_response`: the request's offset (0 when unknown), the data to the file framework.
                let offset = if pending {
                    self.read_offsets.get(&h.message_id).copied()
                } else {
                    self.read_offsets.remove(&h.message_id)
                };
                if !is_pipe && let Some(data) = data.filter(|d| !d.is_empty()) {
                    self.file_data(ctx, cmd, offset.unwrap_or(0), data, false);
                }
            }
            Body::WriteRequest { fid, offset, data } => {
                if is_pipe {
                    self.forward_dce_rpc(ctx, data, fid, true);
                }
                self.file_event(ctx, cmd, fid, Some([FileWrite, PipeWrite, PrintWrite]));
                if !is_pipe && let Some(data) = data.filter(|d| !d.is_empty()) {
                    self.file_data(ctx, cmd, offset, data, true);
                }
            }
            Body::IoctlRequest { ctl_code, fid, input } => {
                if ctl_code == FSCTL_PIPE_TRANSCEIVE {
                    self.forward_dce_rpc(ctx, input, fid, true);
                }
                self.bound(|s| &mut s.ioctl_fids);
                self.ioctl_fids.insert(h.message_id, fid);
            }
            Body::IoctlResponse { ctl_code, output } => {
                // `get_ioctl_fid` forgets the request whatever the response.
                let fid = self.ioctl_fids.remove(&h.message_id).unwrap_or(0);
                if ctl_code == FSCTL_PIPE_TRANSCEIVE {
                    self.forward_dce_rpc(ctx, output, fid, false);
                }
            }
            Body::SetAttributes { fid } => self.file_event(ctx, cmd, fid, Some([FileSetAttribute; 3])),
            Body::Delete { fid, pending } => {
                self.file_event(ctx, cmd, fid, pending.then_some([FileDelete; 3]));
            }
            Body::Rename { fid, name } => {
                let name = text(ctx, name);
                self.set_current_file(cmd, fid, ctx.ts);
                if let Some(file) = self.fid_map.get_mut(&fid) {
                    if let Some(old) = file.name.take() {
                        file.prev_name = Some(old);
                    }
                    file.name = Some(name);
                }
                self.file_event(ctx, cmd, fid, Some([FileRename; 3]));
            }
            Body::CloseRequest { fid } => {
                self.set_current_file(cmd, fid, ctx.ts);
                let action = self.action(cmd, [FileClose, PipeClose, PrintClose]);
                let path = self.tree(cmd).and_then(|t| t.path.clone());
                if let Some(mut file) = self.fid_map.remove(&fid) {
                    if action.is_some() {
                        file.action = action;
                    }
                    if path.is_some() {
                        file.path = path;
                    }
                    self.write_file_log(ctx, &file);
                    // `file_mgr->EndOfFile`: the closed record is still the current file.
                    cmd.file = Ref::Own(file);
                }
                self.end_file(ctx, cmd, None);
                // The pipe's DCE_RPC analyzer is done, and dce-rpc/main.zeek drops its backing record.
                self.named_pipes.close(fid);
            }
        }
    }

    /// A file event's two handlers: the filed record takes the action for the tree's share type (none for a delete
    /// without `delete_pending`), then `write_file_log`.
    fn file_event(&mut self, ctx: &mut Ctx, cmd: &mut Cmd, fid: u64, actions: Option<[Action; 3]>) {
        self.set_current_file(cmd, fid, ctx.ts);
        let action = actions.and_then(|a| self.action(cmd, a));
        if let Some(file) = self.fid_map.get_mut(&fid) {
            if action.is_some() {
                file.action = action;
            }
            let file = file.clone();
            self.write_file_log(ctx, &file);
        }
    }
}

/// A UTF-16 string for the log, with Zeek's weird where the conversion failed.
fn text(ctx: &mut Ctx, t: Text) -> String {
    if t.failed {
        ctx.weird("utf16_conversion_failed", Some("utf16 conversion failed in utf16_to_utf8_val".into()), "");
    }
    bytes_to_log_string(&t.bytes)
}

/// One direction's NBSS framing: the 4-byte header as it arrives, then the message, of which the first
/// [`MAX_KEPT`] bytes are kept.
#[derive(Debug, Default)]
struct Flow {
    header: Vec<u8>,
    len: usize,
    kept: Vec<u8>,
    remaining: usize,
}

impl Flow {
    /// Takes bytes from `data`; returns the message type, kept bytes and length of a message completed by them.
    fn take(&mut self, data: &mut &[u8]) -> Option<(u8, Vec<u8>, usize)> {
        if self.header.len() < 4 {
            let n = (4 - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..n]);
            *data = &data[n..];
            if self.header.len() < 4 {
                return None;
            }
            self.len =
                usize::from(self.header[1]) << 16 | usize::from(self.header[2]) << 8 | usize::from(self.header[3]);
            self.remaining = self.len;
            self.kept.clear();
        }
        let n = self.remaining.min(data.len());
        let limit = if carries_data(&self.kept, &data[..n]) { MAX_DATA_KEPT } else { MAX_KEPT };
        let keep = n.min(limit.saturating_sub(self.kept.len()));
        self.kept.extend_from_slice(&data[..keep]);
        self.remaining -= n;
        *data = &data[n..];
        if self.remaining > 0 {
            return None;
        }
        let msg_type = self.header[0];
        self.header.clear();
        Some((msg_type, std::mem::take(&mut self.kept), self.len))
    }
}

/// Whether a message, of which `kept` and then `more` are the first bytes, is an SMB2 read or write or an SMB1 read,
/// write or transaction (whose data is kept up to [`MAX_DATA_KEPT`]).
fn carries_data(kept: &[u8], more: &[u8]) -> bool {
    let byte = |i: usize| kept.get(i).or_else(|| more.get(i.checked_sub(kept.len())?)).copied();
    let id = [byte(1), byte(2), byte(3)];
    if id != [Some(b'S'), Some(b'M'), Some(b'B')] {
        return false;
    }
    match byte(0) {
        Some(0xfe) => matches!([byte(12), byte(13)], [Some(c), Some(0)]
            if u16::from(c) == parse::cmd::READ || u16::from(c) == parse::cmd::WRITE),
        Some(0xff) => matches!(byte(4), Some(smb1::com::READ_ANDX | smb1::com::WRITE_ANDX | smb1::com::TRANSACTION)),
        _ => false,
    }
}

/// Zeek's `SMB` analyzer on one connection.
#[derive(Debug, Default)]
pub struct Smb {
    flows: [Flow; 2],
    /// No delivery with an SMB header was seen since the start, a gap or an exception (`need_sync`).
    synced: bool,
    /// Deliveries parsed without an exception (`chunks`).
    chunks: u32,
    state: State,
}

/// Whether a delivery starts with an NBSS header and an SMB1 or SMB2 protocol id (`HasSMBHeader`).
fn has_smb_header(data: &[u8]) -> bool {
    matches!(data.get(4..8), Some(b"\xffSMB" | b"\xfeSMB"))
}

impl Smb {
    /// `NeedResync`.
    fn resync(&mut self) {
        self.flows = Default::default();
        self.synced = false;
    }

    /// One whole NBSS message (`SMB_TCP`).
    fn message(&mut self, ctx: &mut Ctx, is_orig: bool, msg_type: u8, msg: &[u8], len: usize) -> Result<(), SmbError> {
        if msg_type != 0 {
            return Ok(());
        }
        let mut r = parse::Reader::new(msg, len, 0, "SMB_Protocol_Identifier");
        let id = r.bytes(4)?;
        let protocol = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        match protocol {
            SMB2 => self.smb2(ctx, is_orig, msg, len),
            SMB3 => parse::Reader::new(msg, len, 4, "SMB2_transform_header").skip(TRANSFORM_HEADER),
            SMB1 => self.smb1(ctx, is_orig, msg, len),
            _ => Ok(()),
        }
    }

    fn smb2(&mut self, ctx: &mut Ctx, is_orig: bool, msg: &[u8], len: usize) -> Result<(), SmbError> {
        let h = parse::parse_header(msg, len)?;
        let is_pipe = self.state.is_pipe(&h, is_orig);
        let mut cmd = self.state.begin(ctx.ts, &h, is_orig);
        let body = parse::parse_body(&h, msg, len, is_orig);
        let result = match body {
            Ok(Body::SecurityBlob { blob }) => {
                self.state.auth.smb_security_blob(ctx, blob, is_orig);
                Ok(())
            }
            Ok(body) => {
                self.state.body(ctx, &h, is_pipe, &mut cmd, body);
                Ok(())
            }
            Err(SmbError::NotKept) => Ok(()),
            Err(e) => Err(e),
        };
        self.state.end(&h, is_orig, cmd);
        result
    }
}

impl Smb {
    /// An SMB1 message: the header's event, then the command's (and its AndX chain's) in binpac's order; those
    /// raised before an exception are handled, as Zeek's are queued.
    fn smb1(&mut self, ctx: &mut Ctx, is_orig: bool, msg: &[u8], len: usize) -> Result<(), SmbError> {
        let h = smb1::parse_header(msg, len)?;
        let is_pipe = self.state.pipes.contains(&u32::from(h.tid));
        let mut cmd = self.state.begin_smb1(ctx.ts, &h);
        let mut parser = smb1::Parser::new(msg, len, h, is_pipe, &mut self.state.smb1_file_a_pipe);
        let parsed = parser.message(is_orig);
        for event in std::mem::take(&mut parser.events) {
            self.state.smb1_event(ctx, &h, is_pipe, &mut cmd, event);
        }
        self.state.end_smb1(&h, is_orig, cmd);
        match parsed {
            Err(SmbError::NotKept) => Ok(()),
            result => result,
        }
    }
}

impl Analyzer for Smb {
    fn spec(&self) -> &'static AnalyzerSpec {
        &SPEC
    }

    fn deliver(&mut self, ctx: &mut Ctx, is_orig: bool, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if !self.synced {
            if !has_smb_header(data) {
                return;
            }
            self.synced = true;
        }
        let mut rest = data;
        while !rest.is_empty() {
            let side = usize::from(!is_orig);
            let Some((msg_type, msg, len)) = self.flows[side].take(&mut rest) else { continue };
            if let Err(e) = self.message(ctx, is_orig, msg_type, &msg, len) {
                ctx.violation(e.to_string());
                self.resync();
                return;
            }
        }
        self.chunks = self.chunks.saturating_add(1);
        if self.chunks == CONFIRM_AFTER {
            ctx.confirm("smb");
        }
    }

    fn undelivered(&mut self, _ctx: &mut Ctx, _is_orig: bool, _len: u64) {
        self.resync();
    }

    fn finish(&mut self, ctx: &mut Ctx) {
        self.state.end_all_files(ctx, true);
        self.state.named_pipes.finish(ctx);
        self.state.auth.finish(ctx);
    }
}

/// Fuzz entry point: arbitrary bytes as both directions of a stream; then again with the small tree ids pipes, so
/// that read, write and ioctl data reach the DCE_RPC analyzers without a tree connect first.
pub fn fuzz(data: &[u8]) {
    super::fuzzing::drive(&mut Smb::default(), Proto::Tcp, 445, data);
    let mut piped = Smb::default();
    piped.state.pipes.extend(0..16);
    super::fuzzing::drive(&mut piped, Proto::Tcp, 445, data);
    // Then each delivery framed as one SMB1 message (NBSS header and protocol id), so that the input reaches the
    // SMB1 grammar at every delivery.
    let mut framed = Vec::new();
    let mut rest = data;
    while let [control, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let body = &tail[..n];
        // At most 4 + 255 bytes: the length's third byte is 0 or 1.
        let len = body.len() + 4;
        let message = [&[0, 0, (len >> 8) as u8, (len & 0xff) as u8][..], b"\xffSMB", body].concat();
        for piece in message.chunks(255) {
            framed.extend([control & 1, piece.len() as u8]);
            framed.extend(piece);
        }
        rest = &tail[n..];
    }
    let mut smb1 = Smb::default();
    smb1.state.pipes.extend(0..16);
    super::fuzzing::drive(&mut smb1, Proto::Tcp, 445, &framed);
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_smb1;
