//! Connection tracking: Zeek's session table, TCP endpoint state machine and history, UDP and ICMP
//! sessions, stream reassembly, and the conn.log record each connection ends with.

mod uid;

pub use uid::UidGenerator;
