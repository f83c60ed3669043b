//! The process's allocator: mimalloc, entered through its plain `mi_malloc` family whenever the alignment asked
//! for is one every block has anyway.
//!
//! The `mimalloc` crate's `GlobalAlloc` calls `mi_malloc_aligned` for every allocation, whose alignment checks and
//! slower fallback cost about twice the instructions of `mi_malloc` (cachegrind on the benchmark mix: 60 per call,
//! 4% of the analysis; docs/BENCHMARKS.md). The rule for taking the plain path is the standard library's own for
//! `malloc` (`library/std/src/sys/alloc`): mimalloc returns blocks aligned to 16 bytes, or to their size when
//! that is smaller.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every mimalloc block of at least this size has (`MI_MAX_ALIGN_SIZE` on 64-bit targets).
const MIN_ALIGN: usize = 16;

/// mimalloc as the global allocator: `#[global_allocator] static A: zeek_node::alloc::Mimalloc = Mimalloc;`.
pub struct Mimalloc;

/// Whether a block from the plain `mi_malloc` family is aligned enough for `layout`.
#[inline(always)]
fn plain_is_aligned(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

/// `layout` from the plain entry point when its blocks are aligned enough, else from the aligned one.
///
/// # Safety
/// Both functions must be mimalloc allocation functions of one family (plain and zeroed alike).
#[inline(always)]
unsafe fn allocate(
    layout: Layout,
    plain: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    // SAFETY: C allocation calls with no preconditions beyond a valid size and a power-of-two alignment, which a
    // `Layout` guarantees.
    unsafe {
        if plain_is_aligned(layout.align(), layout.size()) {
            plain(layout.size()).cast()
        } else {
            aligned(layout.size(), layout.align()).cast()
        }
    }
}

// SAFETY: every path hands the request to mimalloc: the plain functions only when their blocks are aligned as the
// layout asks (see `plain_is_aligned`), the aligned ones otherwise; `mi_free` frees blocks of either family.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain C allocation calls with no preconditions beyond a valid size.
        unsafe { allocate(layout, mi::mi_malloc, mi::mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe { allocate(layout, mi::mi_zalloc, mi::mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's contract).
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the caller's contract); the block keeps its
        // alignment rule for the new size, checked as for a fresh allocation.
        unsafe {
            if plain_is_aligned(layout.align(), new_size) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size and alignment the rule sends either way comes back aligned, zeroed when asked, and keeps its
    /// bytes across a reallocation that crosses from one family to the other.
    #[test]
    fn blocks_are_aligned_and_keep_their_bytes() {
        let a = Mimalloc;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1usize, 3, 8, 15, 16, 17, 100, 1024, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; every block is freed with the layout it has.
                unsafe {
                    let p = a.alloc_zeroed(layout);
                    assert!(!p.is_null());
                    assert_eq!(p.addr() % align, 0, "size {size} align {align}");
                    assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                    std::ptr::write_bytes(p, 0xA5, size);
                    let grown = a.realloc(p, layout, size * 3);
                    assert_eq!(grown.addr() % align, 0, "realloc of size {size} align {align}");
                    assert!(std::slice::from_raw_parts(grown, size).iter().all(|&b| b == 0xA5));
                    a.dealloc(grown, Layout::from_size_align(size * 3, align).unwrap());
                }
            }
        }
    }
}
