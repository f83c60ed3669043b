//! Zeek's PE file analyzer (src/file_analysis/analyzer/pe) and its script (base/files/pe): the headers of a
//! Windows executable that a protocol carries as a file sniffed `application/x-dosexec`, and the pe.log record.
//!
//! Zeek's binpac grammar parses the file as a stream, one structure at a time, each once all its bytes are there:
//! the 64-byte DOS header, the DOS stub up to `e_lfanew`, the NT headers (signature, COFF file header and
//! `SizeOfOptionalHeader` bytes of optional header, buffered whole), then the section table (buffered whole). Its
//! quirks decide the columns and are kept here:
//! * the `PE\0\0` signature is checked but a wrong one stops nothing: any `MZ` file with bytes where the file
//!   header would be gets a record (Zeek's own pe.log baseline has an `unknown-475` machine);
//! * an `e_lfanew` below 64 puts the NT headers right after the DOS header;
//! * an optional header whose fields do not fit in `SizeOfOptionalHeader` (an object file has 0) throws: the
//!   file header was reported, nothing after it is;
//! * an optional header magic other than PE32, PE32+ or ROM parses (with the ROM layout) but raises no event,
//!   and the section table is still read.
//!
//! [`PeParser`] consumes the file's bytes as they arrive and keeps only the structure it is in (the DOS stub is
//! skipped, not buffered), so it holds at most the NT headers (64 KiB) and the section names.

use crate::analyzers::Ctx;
use crate::logs::{PE, Value, bytes_to_log_string};

/// The mime type Zeek attaches the PE analyzer to (`PE::pe_mime_types`).
pub const MIME_TYPE: &str = "application/x-dosexec";

/// The DOS header's signature: what the file sniffer knows an executable by (`executable.sig`), and so what the
/// content a PE analysis may be attached to starts with.
pub const DOS_SIGNATURE: &[u8; 2] = b"MZ";

/// How many of `DOS_SIGNATURE`'s bytes a content's start has matched, after `bytes` more of it: `matched` is what
/// the content before matched (`None`: it did not start with the signature, and nothing after changes that).
pub fn match_dos_signature(matched: Option<usize>, bytes: impl IntoIterator<Item = u8>) -> Option<usize> {
    let mut matched = matched?;
    for b in bytes.into_iter().take(DOS_SIGNATURE.len().saturating_sub(matched)) {
        if b != DOS_SIGNATURE[matched] {
            return None;
        }
        matched += 1;
    }
    Some(matched)
}

const DOS_HEADER_LEN: usize = 64;
/// `PE\0\0` and the COFF file header: what precedes the optional header.
const NT_FIXED_LEN: usize = 24;
const SECTION_HEADER_LEN: usize = 40;
/// The standard number of data directories; the script reads only the first seven.
const DATA_DIRECTORIES_KEPT: usize = 16;

const MAGIC_PE32: u16 = 0x10b;
const MAGIC_ROM: u16 = 0x107;
const MAGIC_PE32_PLUS: u16 = 0x20b;

/// `IMAGE_FILE_32BIT_MACHINE`.
const FILE_32BIT_MACHINE: u16 = 0x100;
const DLL_DYNAMIC_BASE: u16 = 0x40;
const DLL_FORCE_INTEGRITY: u16 = 0x80;
const DLL_NX_COMPAT: u16 = 0x100;
const DLL_NO_SEH: u16 = 0x400;

/// The COFF file header (`pe_file_header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub machine: u16,
    pub number_of_sections: u16,
    pub time_date_stamp: u32,
    pub size_of_optional_header: u16,
    pub characteristics: u16,
}

/// What the script takes from the optional header (`pe_optional_header`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionalHeader {
    pub magic: u16,
    pub os_version: (u16, u16),
    pub subsystem: u16,
    pub dll_characteristics: u16,
    /// The data directories' sizes (`table_sizes`), at most [`DATA_DIRECTORIES_KEPT`].
    pub table_sizes: Vec<u32>,
}

/// The events the headers raised, in Zeek's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeHeaders {
    /// `pe_dos_header` was raised (the record's `ts` is taken then).
    pub dos_header: bool,
    pub file_header: Option<FileHeader>,
    pub optional_header: Option<OptionalHeader>,
    /// The section names (up to the first NUL), once the whole section table was there.
    pub section_names: Option<Vec<Vec<u8>>>,
}

/// Where the parser is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    DosHeader,
    DosStub { remaining: u64 },
    NtHeaders,
    SectionTable { sections: u16 },
    Done,
}

/// Zeek's PE analyzer over a file's bytes in order.
#[derive(Debug, Clone)]
pub struct PeParser {
    stage: Stage,
    /// The bytes of the structure being collected.
    buf: Vec<u8>,
    /// Section names read while the table is incomplete.
    pending_names: Vec<Vec<u8>>,
    headers: PeHeaders,
}

impl Default for PeParser {
    fn default() -> Self {
        PeParser { stage: Stage::DosHeader, buf: Vec::new(), pending_names: Vec::new(), headers: PeHeaders::default() }
    }
}

impl PeParser {
    /// The next bytes of the file.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.stage != Stage::Done {
            match self.stage {
                Stage::DosHeader => {
                    if take_into(&mut self.buf, DOS_HEADER_LEN, &mut data) {
                        self.headers.dos_header = true;
                        let e_lfanew = le_u32(&self.buf, 60).unwrap_or(0);
                        self.buf.clear();
                        self.stage = after_dos_stub(u64::from(e_lfanew).saturating_sub(DOS_HEADER_LEN as u64));
                    }
                }
                Stage::DosStub { remaining } => {
                    let skipped = remaining.min(data.len() as u64);
                    data = &data[skipped as usize..];
                    self.stage = after_dos_stub(remaining - skipped);
                }
                Stage::NtHeaders => {
                    let wanted = nt_headers_len(&self.buf);
                    if take_into(&mut self.buf, wanted, &mut data) && self.buf.len() == nt_headers_len(&self.buf) {
                        self.nt_headers_complete();
                    }
                }
                Stage::SectionTable { sections } => {
                    if take_into(&mut self.buf, SECTION_HEADER_LEN, &mut data) {
                        self.pending_names.push(section_name(&self.buf).to_vec());
                        self.buf.clear();
                        if self.pending_names.len() == usize::from(sections) {
                            self.section_table_complete();
                        }
                    }
                }
                Stage::Done => {}
            }
        }
    }

    /// `len` bytes of the file follow that the caller does not have (beyond what it keeps of a file's start):
    /// the DOS stub may be skipped that way; anything else ends the analysis as if the file ended.
    pub fn unseen(&mut self, len: u64) {
        match self.stage {
            _ if len == 0 => {}
            Stage::DosStub { remaining } => self.stage = after_dos_stub(remaining.saturating_sub(len)),
            _ => self.stage = Stage::Done,
        }
    }

    /// Whether more bytes can change anything.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    pub fn headers(&self) -> &PeHeaders {
        &self.headers
    }

    fn nt_headers_complete(&mut self) {
        let file_header = parse_file_header(&self.buf[4..NT_FIXED_LEN]);
        self.headers.file_header = Some(file_header);
        // A binpac exception (fields beyond the optional header's length) stops the analyzer.
        self.stage = match parse_optional_header(&self.buf[NT_FIXED_LEN..]) {
            Err(OutOfBounds) => Stage::Done,
            Ok(optional) => {
                self.headers.optional_header = optional;
                Stage::SectionTable { sections: file_header.number_of_sections }
            }
        };
        self.buf = Vec::new();
        if self.stage == (Stage::SectionTable { sections: 0 }) {
            self.section_table_complete();
        }
    }

    fn section_table_complete(&mut self) {
        self.headers.section_names = Some(std::mem::take(&mut self.pending_names));
        self.buf = Vec::new();
        self.stage = Stage::Done;
    }
}

/// Parses a whole file start at once (tests and fuzzing).
pub fn parse(bytes: &[u8]) -> PeHeaders {
    let mut parser = PeParser::default();
    parser.feed(bytes);
    parser.headers
}

fn after_dos_stub(remaining: u64) -> Stage {
    if remaining == 0 { Stage::NtHeaders } else { Stage::DosStub { remaining } }
}

/// Moves bytes from `data` into `buf` until it holds `wanted`; whether it does.
fn take_into(buf: &mut Vec<u8>, wanted: usize, data: &mut &[u8]) -> bool {
    let n = wanted.saturating_sub(buf.len()).min(data.len());
    buf.extend_from_slice(&data[..n]);
    *data = &data[n..];
    buf.len() >= wanted
}

/// How long the NT headers are, as far as the bytes so far tell: the fixed part until it is complete.
fn nt_headers_len(buf: &[u8]) -> usize {
    le_u16(buf, 20).map_or(NT_FIXED_LEN, |optional_len| NT_FIXED_LEN + usize::from(optional_len))
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// The COFF file header from its 20 bytes (missing bytes read as zero; the caller passes all 20).
pub fn parse_file_header(b: &[u8]) -> FileHeader {
    FileHeader {
        machine: le_u16(b, 0).unwrap_or(0),
        number_of_sections: le_u16(b, 2).unwrap_or(0),
        time_date_stamp: le_u32(b, 4).unwrap_or(0),
        size_of_optional_header: le_u16(b, 16).unwrap_or(0),
        characteristics: le_u16(b, 18).unwrap_or(0),
    }
}

/// A field of the optional header lies beyond `SizeOfOptionalHeader` (binpac's out-of-bound exception).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfBounds;

/// The optional header (exactly `SizeOfOptionalHeader` bytes). `Ok(None)`: it parsed but its magic is none of
/// PE32, PE32+ and ROM, so Zeek raises no event for it.
pub fn parse_optional_header(b: &[u8]) -> Result<Option<OptionalHeader>, OutOfBounds> {
    let magic = le_u16(b, 0).ok_or(OutOfBounds)?;
    // After the standard fields: base_of_data (PE32 only) and image_base (8 bytes in PE32+). A ROM or unknown
    // magic leaves binpac's format unknown: no base_of_data, a 4-byte image_base, no stack and heap sizes.
    let (windows_fields, memory_len) = match magic {
        MAGIC_PE32 => (32, 16),
        MAGIC_PE32_PLUS => (32, 32),
        _ => (28, 0),
    };
    let field16 = |at: usize| le_u16(b, windows_fields + at).ok_or(OutOfBounds);
    let os_version = (field16(8)?, field16(10)?);
    let subsystem = field16(36)?;
    let dll_characteristics = field16(38)?;
    let loader_fields = windows_fields + 40 + memory_len;
    let directories = le_u32(b, loader_fields + 4).ok_or(OutOfBounds)?;
    let first_directory = loader_fields + 8;
    let directories_end = u64::from(directories) * 8 + first_directory as u64;
    if directories_end > b.len() as u64 {
        return Err(OutOfBounds);
    }
    if ![MAGIC_PE32, MAGIC_ROM, MAGIC_PE32_PLUS].contains(&magic) {
        return Ok(None);
    }
    let kept = (directories as usize).min(DATA_DIRECTORIES_KEPT);
    let table_sizes = (0..kept).filter_map(|i| le_u32(b, first_directory + i * 8 + 4)).collect();
    Ok(Some(OptionalHeader { magic, os_version, subsystem, dll_characteristics, table_sizes }))
}

/// A section header's name: its 8 name bytes up to the first NUL.
fn section_name(header: &[u8]) -> &[u8] {
    let name = &header[..header.len().min(8)];
    name.iter().position(|&b| b == 0).map_or(name, |nul| &name[..nul])
}

/// The pe.log record as `base/files/pe/main.zeek` fills `PE::Info`: none without a file header (the script logs
/// only records with a `machine`).
pub fn log_values(ts: f64, fuid: &str, headers: &PeHeaders) -> Option<Vec<Value>> {
    let file = headers.file_header?;
    let is_exe = file.size_of_optional_header > 0;
    // The script ignores the optional header and the sections of a file without an optional header.
    let optional = headers.optional_header.as_ref().filter(|_| is_exe);
    let dll = |flag: u16| optional.is_some_and(|o| o.dll_characteristics & flag != 0);
    let has_table = |index: usize| {
        optional.map_or(Value::Unset, |o| Value::Bool(o.table_sizes.get(index).is_some_and(|&size| size > 0)))
    };
    let section_names = headers
        .section_names
        .as_ref()
        .filter(|names| is_exe && !names.is_empty())
        .map_or(Value::Unset, |names| Value::str_vec(names.iter().map(|n| bytes_to_log_string(n))));
    let values = vec![
        Value::Time(ts),
        Value::str(fuid),
        Value::str(or_unknown(machine_name(file.machine), file.machine)),
        Value::Time(f64::from(file.time_date_stamp)),
        Value::opt_str(optional.map(|o| {
            let (major, minor) = o.os_version;
            or_unknown(os_name(o.os_version), format_args!("{major}.{minor}"))
        })),
        Value::opt_str(optional.map(|o| or_unknown(subsystem_name(o.subsystem), o.subsystem))),
        Value::Bool(is_exe),
        Value::Bool(file.characteristics & FILE_32BIT_MACHINE == 0),
        Value::Bool(dll(DLL_DYNAMIC_BASE)),
        Value::Bool(dll(DLL_NX_COMPAT)),
        Value::Bool(dll(DLL_FORCE_INTEGRITY)),
        Value::Bool(!dll(DLL_NO_SEH)),
        has_table(1),
        has_table(0),
        has_table(4),
        has_table(6),
        section_names,
    ];
    debug_assert_eq!(values.len(), PE.fields.len());
    Some(values)
}

/// A name from one of the script's tables, or its `unknown-N` default (`N` the code looked up).
fn or_unknown(name: Option<&'static str>, code: impl std::fmt::Display) -> String {
    name.map_or_else(|| format!("unknown-{code}"), str::to_owned)
}

/// `PE::machine_types`.
fn machine_name(machine: u16) -> Option<&'static str> {
    Some(match machine {
        0x0 => "UNKNOWN",
        0x1d3 => "AM33",
        0x8664 => "AMD64",
        0x1c0 => "ARM",
        0x1c4 => "ARMNT",
        0xaa64 => "ARM64",
        0xebc => "EBC",
        0x14c => "I386",
        0x200 => "IA64",
        0x9041 => "M32R",
        0x266 => "MIPS16",
        0x366 => "MIPSFPU",
        0x466 => "MIPSFPU16",
        0x1f0 => "POWERPC",
        0x1f1 => "POWERPCFP",
        0x166 => "R4000",
        0x1a2 => "SH3",
        0x1a3 => "SH3DSP",
        0x1a6 => "SH4",
        0x1a8 => "SH5",
        0x1c2 => "THUMB",
        0x169 => "WCEMIPSV2",
        _ => return None,
    })
}

/// `PE::windows_subsystems`.
fn subsystem_name(subsystem: u16) -> Option<&'static str> {
    Some(match subsystem {
        0 => "UNKNOWN",
        1 => "NATIVE",
        2 => "WINDOWS_GUI",
        3 => "WINDOWS_CUI",
        7 => "POSIX_CUI",
        9 => "WINDOWS_CE_GUI",
        10 => "EFI_APPLICATION",
        11 => "EFI_BOOT_SERVICE_DRIVER",
        12 => "EFI_RUNTIME_DRIVER",
        13 => "EFI_ROM",
        14 => "XBOX",
        _ => return None,
    })
}

/// `PE::os_versions`, by the optional header's operating system version.
fn os_name(version: (u16, u16)) -> Option<&'static str> {
    Some(match version {
        (10, 0) => "Windows 10",
        (6, 4) => "Windows 10 Technical Preview",
        (6, 3) => "Windows 8.1 or Server 2012 R2",
        (6, 2) => "Windows 8 or Server 2012",
        (6, 1) => "Windows 7 or Server 2008 R2",
        (6, 0) => "Windows Vista or Server 2008",
        (5, 2) => "Windows XP x64 or Server 2003",
        (5, 1) => "Windows XP",
        (5, 0) => "Windows 2000",
        (4, 90) => "Windows Me",
        (4, 10) => "Windows 98",
        (4, 0) => "Windows 95 or NT 4.0",
        (3, 51) => "Windows NT 3.51",
        (3, 50) => "Windows NT 3.5",
        (3, 2) => "Windows 3.2",
        (3, 11) => "Windows for Workgroups 3.11",
        (3, 10) => "Windows 3.1 or NT 3.1",
        (3, 0) => "Windows 3.0",
        (2, 11) => "Windows 2.11",
        (2, 10) => "Windows 2.10",
        (2, 0) => "Windows 2.0",
        (1, 4) => "Windows 1.04",
        (1, 3) => "Windows 1.03",
        (1, 1) => "Windows 1.01",
        (1, 0) => "Windows 1.0",
        _ => return None,
    })
}

/// A file's PE analysis as the file layers run it: attached when the file is sniffed as [`MIME_TYPE`], fed the
/// file's bytes in order (gaps are not reported to it, as Zeek's PE analyzer ignores them), and stamped with the
/// network time of the first file event after the DOS header was complete (`PE::set_file`'s `network_time()`).
#[derive(Debug, Clone, Default)]
pub struct PeAnalysis {
    parser: PeParser,
    ts: Option<f64>,
}

impl PeAnalysis {
    /// The analysis of a file sniffed with `mime`, given the bytes buffered until then; `None` for other types.
    pub fn attach(mime: Option<&str>, bof: &[u8]) -> Option<Box<PeAnalysis>> {
        (mime == Some(MIME_TYPE)).then(|| {
            let mut analysis = Box::<PeAnalysis>::default();
            analysis.parser.feed(bof);
            analysis
        })
    }

    /// More of the file: `seen` bytes, then `unseen` ones the caller did not keep.
    pub fn data(&mut self, seen: &[u8], unseen: u64) {
        if !self.parser.is_done() {
            self.parser.feed(seen);
            self.parser.unseen(unseen);
        }
    }

    /// Network time is `ts` now.
    pub fn stamp(&mut self, ts: f64) {
        if self.ts.is_none() && self.parser.headers().dos_header {
            self.ts = Some(ts);
        }
    }

    /// The pe.log record, written when the file is removed (`file_state_remove`); `ts` is the time then.
    pub fn log_values(mut self, ts: f64, fuid: &str) -> Option<Vec<Value>> {
        self.stamp(ts);
        log_values(self.ts?, fuid, self.parser.headers())
    }
}

/// `file_state_remove` for a file's analysis: writes its pe.log record (pe.log's handler runs before files.log's)
/// and returns files.log's `analyzers` column. With the `pe` stream off (Zeek's bare mode without `base/files/pe`)
/// no analyzer was attached.
pub fn file_removed(ctx: &mut Ctx, pe: Option<Box<PeAnalysis>>, fuid: &str) -> Value {
    let Some(pe) = pe.filter(|_| ctx.cfg.is_enabled("pe")) else { return Value::Set(vec![]) };
    if let Some(values) = pe.log_values(ctx.ts, fuid) {
        ctx.log(&PE, values);
    }
    Value::str_set(["PE"])
}

/// Drives the parser over arbitrary bytes, whole and split at a point the first byte chooses. For fuzzing; it
/// must never panic, and splitting must not change the result.
pub fn fuzz(data: &[u8]) {
    let whole = parse(data);
    let split = data.first().map_or(0, |&b| usize::from(b) * 7).min(data.len());
    let mut parser = PeParser::default();
    parser.feed(&data[..split]);
    parser.feed(&data[split..]);
    assert_eq!(parser.headers, whole, "feeding in two parts changed the headers");
    let _ = log_values(0.0, "F", &whole);
}

#[cfg(test)]
pub(crate) mod testing {
    //! Small PE images built field by field.

    /// What a test image holds.
    pub struct Image {
        pub e_lfanew: u32,
        pub machine: u16,
        pub time_date_stamp: u32,
        pub characteristics: u16,
        pub magic: u16,
        pub os_version: (u16, u16),
        pub subsystem: u16,
        pub dll_characteristics: u16,
        /// Data directory sizes (the count written is their number).
        pub table_sizes: Vec<u32>,
        pub sections: Vec<&'static [u8]>,
    }

    impl Image {
        /// A 32-bit GUI program for Windows NT 4 with three sections and an import table.
        pub fn pe32() -> Image {
            Image {
                e_lfanew: 0x80,
                machine: 0x14c,
                time_date_stamp: 1_402_852_568,
                characteristics: 0x0102,
                magic: 0x10b,
                os_version: (4, 0),
                subsystem: 2,
                dll_characteristics: 0,
                table_sizes: vec![0, 40, 0x1000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                sections: vec![b".text", b".data", b".rsrc"],
            }
        }

        pub fn optional_header(&self) -> Vec<u8> {
            let mut o = Vec::new();
            o.extend(self.magic.to_le_bytes());
            o.extend([14, 0]); // linker version
            o.extend([0u8; 20]); // code sizes, entry point, base of code
            match self.magic {
                0x10b => o.extend([0u8; 8]), // base of data, image base
                0x20b => o.extend([0u8; 8]), // image base
                _ => o.extend([0u8; 4]),     // image base
            }
            o.extend([0u8; 8]); // section and file alignment
            o.extend(self.os_version.0.to_le_bytes());
            o.extend(self.os_version.1.to_le_bytes());
            o.extend([0u8; 8]); // image and subsystem versions
            o.extend([0u8; 16]); // win32 version, image size, headers size, checksum
            o.extend(self.subsystem.to_le_bytes());
            o.extend(self.dll_characteristics.to_le_bytes());
            o.extend(match self.magic {
                0x10b => vec![0u8; 16],
                0x20b => vec![0u8; 32],
                _ => vec![],
            });
            o.extend([0u8; 4]); // loader flags
            o.extend((self.table_sizes.len() as u32).to_le_bytes());
            for (i, size) in self.table_sizes.iter().enumerate() {
                o.extend((0x1000 * i as u32).to_le_bytes());
                o.extend(size.to_le_bytes());
            }
            o
        }

        pub fn bytes(&self) -> Vec<u8> {
            let optional = self.optional_header();
            self.bytes_with_optional(&optional)
        }

        /// The image with `optional` as its optional header (`SizeOfOptionalHeader` its length).
        pub fn bytes_with_optional(&self, optional: &[u8]) -> Vec<u8> {
            let mut b = vec![0u8; 64];
            b[..2].copy_from_slice(b"MZ");
            b[60..64].copy_from_slice(&self.e_lfanew.to_le_bytes());
            b.resize((self.e_lfanew as usize).max(64), 0x90);
            b.extend(b"PE\0\0");
            b.extend(self.machine.to_le_bytes());
            b.extend((self.sections.len() as u16).to_le_bytes());
            b.extend(self.time_date_stamp.to_le_bytes());
            b.extend([0u8; 8]); // symbol table
            b.extend((optional.len() as u16).to_le_bytes());
            b.extend(self.characteristics.to_le_bytes());
            b.extend(optional);
            for name in &self.sections {
                let mut header = [0u8; 40];
                header[..name.len()].copy_from_slice(name);
                b.extend(header);
            }
            b.extend([0xcc; 512]); // section data
            b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::Image;
    use super::*;
    use crate::logs::{LogRecord, format_record_tsv};

    /// The pe.log line after `ts` and `id`, as Zeek's TSV writer prints it.
    fn columns(bytes: &[u8]) -> Option<String> {
        let values = log_values(1.5, "Fpe", &parse(bytes))?;
        let mut line = String::new();
        format_record_tsv(&mut line, &LogRecord::new(&PE, values));
        Some(line.trim_end_matches('\n').split('\t').skip(2).collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn a_pe32_program_fills_every_column() {
        let values = log_values(1.5, "Fpe", &parse(&Image::pe32().bytes())).unwrap();
        assert_eq!(values[0], Value::Time(1.5));
        assert_eq!(values[1], Value::str("Fpe"));
        assert_eq!(
            columns(&Image::pe32().bytes()).unwrap(),
            "I386 1402852568.000000 Windows 95 or NT 4.0 WINDOWS_GUI T F F F F T T F F F .text,.data,.rsrc"
        );
    }

    #[test]
    fn a_pe32_plus_library_reads_its_flags_and_directories() {
        let image = Image {
            machine: 0x8664,
            characteristics: 0x2022, // DLL, large address aware, executable: no 32BIT_MACHINE
            magic: 0x20b,
            os_version: (6, 1),
            subsystem: 3,
            // DYNAMIC_BASE, FORCE_INTEGRITY, NX_COMPAT, NO_SEH
            dll_characteristics: 0x40 | 0x80 | 0x100 | 0x400,
            table_sizes: vec![0x200, 0, 0, 0, 0x1800, 0, 0x1c],
            sections: vec![b".text", b".rdata", b".pdata", b".reloc\0x"],
            ..Image::pe32()
        };
        assert_eq!(
            columns(&image.bytes()).unwrap(),
            "AMD64 1402852568.000000 Windows 7 or Server 2008 R2 WINDOWS_CUI T T T T T F F T T T \
             .text,.rdata,.pdata,.reloc"
        );
    }

    #[test]
    fn names_outside_zeeks_tables_are_unknown_numbers() {
        let image = Image { machine: 475, os_version: (7, 3), subsystem: 99, ..Image::pe32() };
        let line = columns(&image.bytes()).unwrap();
        assert!(line.starts_with("unknown-475 1402852568.000000 unknown-7.3 unknown-99 T"), "{line}");
    }

    #[test]
    fn fewer_than_seven_directories_leave_the_later_tables_false() {
        let image = Image { table_sizes: vec![0, 8], ..Image::pe32() };
        assert!(columns(&image.bytes()).unwrap().contains("WINDOWS_GUI T F F F F T T F F F .text"));
    }

    #[test]
    fn an_object_file_has_no_optional_header_and_no_sections_logged() {
        let image = Image { machine: 475, time_date_stamp: 0, characteristics: 0, ..Image::pe32() };
        assert_eq!(columns(&image.bytes_with_optional(&[])).unwrap(), "unknown-475 0.000000 - - F T F F F T - - - - -");
    }

    #[test]
    fn a_wrong_signature_stops_nothing() {
        let mut bytes = Image::pe32().bytes();
        bytes[0x80..0x84].copy_from_slice(b"NE\0\0");
        assert_eq!(columns(&bytes), columns(&Image::pe32().bytes()));
    }

    #[test]
    fn a_small_e_lfanew_puts_the_nt_headers_after_the_dos_header() {
        let mut bytes = Image { e_lfanew: 64, ..Image::pe32() }.bytes();
        bytes[60..64].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(columns(&bytes), columns(&Image::pe32().bytes()));
    }

    #[test]
    fn an_optional_header_shorter_than_its_fields_reports_only_the_file_header() {
        let image = Image::pe32();
        let optional = image.optional_header();
        // The directories overrun the declared length: binpac throws, no optional header, no sections.
        let line = columns(&image.bytes_with_optional(&optional[..optional.len() - 4])).unwrap();
        assert_eq!(line, "I386 1402852568.000000 - - T F F F F T - - - - -");
        let line = columns(&image.bytes_with_optional(&optional[..2])).unwrap();
        assert_eq!(line, "I386 1402852568.000000 - - T F F F F T - - - - -");
    }

    #[test]
    fn an_unknown_magic_raises_no_optional_header_but_sections_follow() {
        let image = Image { magic: 0x999, ..Image::pe32() };
        assert_eq!(
            columns(&image.bytes()).unwrap(),
            "I386 1402852568.000000 - - T F F F F T - - - - .text,.data,.rsrc"
        );
        // A ROM image is an event, with the short layout.
        let rom = Image { magic: 0x107, os_version: (5, 1), ..Image::pe32() };
        assert!(columns(&rom.bytes()).unwrap().contains("Windows XP WINDOWS_GUI T F F F F T T F F F .text"));
    }

    #[test]
    fn truncated_files_report_the_structures_that_were_complete() {
        let bytes = Image::pe32().bytes();
        let nt_end = 0x80 + 24 + Image::pe32().optional_header().len();
        // Within the DOS header, the stub, or the NT headers: no file header, no record.
        for cut in [0, 2, 63, 64, 0x80, 0x80 + 23, nt_end - 1] {
            assert_eq!(columns(&bytes[..cut]), None, "cut at {cut}");
        }
        assert!(parse(&bytes[..64]).dos_header);
        // Within the section table: the headers without the sections.
        for cut in [nt_end, nt_end + 40, nt_end + 119] {
            assert_eq!(
                columns(&bytes[..cut]).unwrap(),
                "I386 1402852568.000000 Windows 95 or NT 4.0 WINDOWS_GUI T F F F F T T F F F -"
            );
        }
        assert!(columns(&bytes[..nt_end + 120]).unwrap().ends_with(".text,.data,.rsrc"));
    }

    #[test]
    fn non_pe_input_gives_no_record() {
        for input in [&b""[..], b"MZ", b"GIF89a", &[0xff; 80]] {
            assert_eq!(columns(input), None);
        }
        // An MZ file of DOS code only: the file header is whatever follows; Zeek logs it all the same.
        let mut dos = vec![0u8; 200];
        dos[..2].copy_from_slice(b"MZ");
        assert!(columns(&dos).is_some());
    }

    #[test]
    fn byte_by_byte_feeding_equals_one_pass() {
        let bytes = Image::pe32().bytes();
        let mut parser = PeParser::default();
        for b in &bytes {
            parser.feed(std::slice::from_ref(b));
        }
        assert!(parser.is_done());
        assert_eq!(parser.headers(), &parse(&bytes));
    }

    #[test]
    fn unseen_bytes_skip_the_stub_but_end_the_headers() {
        let bytes = Image { e_lfanew: 5000, ..Image::pe32() }.bytes();
        let mut parser = PeParser::default();
        parser.feed(&bytes[..100]);
        parser.unseen(4900);
        parser.feed(&bytes[5000..]);
        assert_eq!(parser.headers(), &parse(&bytes));

        let mut parser = PeParser::default();
        parser.feed(&bytes[..5010]);
        parser.unseen(10);
        assert!(parser.is_done());
        assert_eq!(parser.headers().file_header, None);
    }

    #[test]
    fn huge_counts_are_bounded() {
        // 65535 sections announced, none delivered; an e_lfanew of 4 GiB skipped without buffering.
        let mut bytes = Image::pe32().bytes();
        bytes[0x86..0x88].copy_from_slice(&u16::MAX.to_le_bytes());
        let headers = parse(&bytes);
        assert!(headers.file_header.is_some() && headers.section_names.is_none());
        let mut far = bytes.clone();
        far[60..64].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut parser = PeParser::default();
        parser.feed(&far);
        parser.unseen(u64::MAX);
        assert!(parser.headers().dos_header && parser.headers().file_header.is_none());
    }

    #[test]
    fn the_record_is_stamped_when_the_dos_header_was_complete() {
        let bytes = Image::pe32().bytes();
        let mut pe = PeAnalysis::attach(Some(MIME_TYPE), &bytes[..10]).unwrap();
        pe.stamp(1.0);
        pe.data(&bytes[10..], 0);
        pe.stamp(2.0);
        pe.stamp(3.0);
        assert_eq!(pe.log_values(4.0, "F").unwrap()[0], Value::Time(2.0));
        assert!(PeAnalysis::attach(Some("text/plain"), &bytes).is_none());
        assert!(PeAnalysis::attach(None, &bytes).is_none());
    }

    #[test]
    fn fuzz_entry_survives_samples() {
        let image = Image::pe32().bytes();
        for sample in [&image[..], &image[..100], b"MZ", b"", &[0xff; 300]] {
            fuzz(sample);
        }
    }
}
