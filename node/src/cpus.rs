//! Pinning analysis threads to CPUs (`--pin-cpus`, zeekctl's `pin_cpus`): on a busy sensor a thread that stays on
//! one core keeps its connections' state in that core's caches, and cores set apart for the NIC's interrupts stay
//! free. `auto` takes the CPUs the process may run on, in order: in Kubernetes, with the kubelet's static CPU
//! manager, the cores a Guaranteed pod was given for itself.

use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpuError {
    /// (Said after the value, which whoever read it names: clap, the layout, node.cfg.)
    #[error("expected `auto` or a list of CPU numbers and ranges, e.g. 2,3,8-11")]
    Syntax,
    #[error("CPU {cpu} is not one this process may run on (it may run on {allowed})")]
    NotAllowed { cpu: usize, allowed: CpuList },
    #[error("cannot read the CPUs this process may run on: {0}")]
    Affinity(String),
}

/// CPU numbers in the order threads take them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

impl fmt::Display for CpuList {
    /// As the kernel writes CPU lists (`Cpus_allowed_list`): ascending runs as ranges, `0-3,8`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                end += 1;
                i += 1;
            }
            parts.push(if end == start { start.to_string() } else { format!("{start}-{end}") });
            i += 1;
        }
        f.write_str(&parts.join(","))
    }
}

/// The highest CPU number a list may name (the kernel's `cpu_set_t` holds this many).
const MAX_CPUS: usize = libc::CPU_SETSIZE as usize;

/// What `--pin-cpus` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinning {
    /// The CPUs the process may run on, in order.
    Auto,
    /// These CPUs, in this order (zeekctl's `pin_cpus=2,3,4`, or ranges).
    List(CpuList),
}

impl std::str::FromStr for Pinning {
    type Err = CpuError;

    fn from_str(s: &str) -> Result<Self, CpuError> {
        if s.trim() == "auto" {
            return Ok(Pinning::Auto);
        }
        let number = |n: &str| n.trim().parse::<usize>().ok().filter(|&n| n < MAX_CPUS).ok_or(CpuError::Syntax);
        let mut cpus = Vec::new();
        for part in s.split(',') {
            match part.split_once('-') {
                Some((first, last)) => {
                    let (first, last) = (number(first)?, number(last)?);
                    if first > last {
                        return Err(CpuError::Syntax);
                    }
                    cpus.extend(first..=last);
                }
                None => cpus.push(number(part)?),
            }
        }
        Ok(Pinning::List(CpuList(cpus)))
    }
}

impl Pinning {
    /// The CPUs threads are pinned to, given the CPUs the process may run on: an error names a CPU outside them
    /// (pinning a thread there would fail, or, with a list written for another machine, pin the wrong cores).
    pub fn resolve(&self, allowed: &CpuList) -> Result<CpuList, CpuError> {
        match self {
            Pinning::Auto => Ok(allowed.clone()),
            Pinning::List(list) => match list.0.iter().find(|cpu| !allowed.0.contains(cpu)) {
                Some(&cpu) => Err(CpuError::NotAllowed { cpu, allowed: allowed.clone() }),
                None => Ok(list.clone()),
            },
        }
    }
}

impl CpuList {
    /// The CPU analysis thread `thread` runs on: the list's in turn (more threads than CPUs share them).
    pub fn for_thread(&self, thread: usize) -> Option<usize> {
        (!self.0.is_empty()).then(|| self.0[thread % self.0.len()])
    }
}

/// The CPUs this process may run on (its affinity mask: in a container, its cpuset).
pub fn allowed() -> Result<CpuList, CpuError> {
    // SAFETY: a zeroed cpu_set_t is an empty set, and the kernel writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(CpuError::Affinity(std::io::Error::last_os_error().to_string()));
    }
    Ok(CpuList((0..MAX_CPUS).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect()))
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    // SAFETY: as in `allowed`; CPU_SET is given a number below CPU_SETSIZE (`Pinning` refuses larger ones).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // Thread id 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(cpus: &[usize]) -> CpuList {
        CpuList(cpus.to_vec())
    }

    #[test]
    fn lists_and_ranges_parse_as_zeekctl_and_taskset_write_them() {
        assert_eq!("auto".parse(), Ok(Pinning::Auto));
        assert_eq!("2,3,4".parse(), Ok(Pinning::List(list(&[2, 3, 4]))));
        assert_eq!("8-11,2".parse(), Ok(Pinning::List(list(&[8, 9, 10, 11, 2]))));
        assert_eq!(" 5 ".parse(), Ok(Pinning::List(list(&[5]))));
        for bad in ["", "a", "3-1", "1,,2", "-1", "1-", "99999"] {
            assert_eq!(bad.parse::<Pinning>(), Err(CpuError::Syntax), "{bad}");
        }
    }

    #[test]
    fn lists_are_written_as_the_kernel_writes_them() {
        assert_eq!(list(&[0, 1, 2, 3, 8]).to_string(), "0-3,8");
        assert_eq!(list(&[5]).to_string(), "5");
        assert_eq!(list(&[3, 1]).to_string(), "3,1");
        assert_eq!(list(&[]).to_string(), "");
    }

    #[test]
    fn a_cpu_the_process_may_not_run_on_is_refused() {
        let allowed = list(&[0, 1, 2, 3]);
        assert_eq!(Pinning::Auto.resolve(&allowed), Ok(allowed.clone()));
        assert_eq!(Pinning::List(list(&[3, 1])).resolve(&allowed), Ok(list(&[3, 1])));
        let err = Pinning::List(list(&[1, 9])).resolve(&allowed).unwrap_err();
        assert_eq!(err.to_string(), "CPU 9 is not one this process may run on (it may run on 0-3)");
    }

    #[test]
    fn threads_take_the_cpus_in_turn() {
        let cpus = list(&[4, 6]);
        assert_eq!((0..5).map(|t| cpus.for_thread(t)).collect::<Vec<_>>(), [4, 6, 4, 6, 4].map(Some));
        assert_eq!(list(&[]).for_thread(0), None);
    }

    #[test]
    fn this_process_may_run_somewhere_and_a_thread_pins_to_it() {
        let allowed = allowed().expect("the affinity mask");
        assert!(!allowed.0.is_empty());
        let last = *allowed.0.last().unwrap();
        std::thread::spawn(move || {
            pin_current_thread(last).expect("pin");
            assert_eq!(super::allowed().unwrap(), list(&[last]));
        })
        .join()
        .unwrap();
    }
}
