//! Intrusive doubly linked lists: the bookkeeping lists of the slow paths
//! (a heap's partial slabs, the pool's superslabs, the large layer's page
//! chunks) link their nodes through two pointer fields of the node itself.
//!
//! Invariants: nothing here allocates or locks; the caller owns the list
//! (holds its lock) and passes the node's link fields through `Links`, so one
//! node can sit on several lists at once through different fields.

use core::ptr::null_mut;

/// The node's (next, prev) fields for one list.
pub(crate) type Links<T> = unsafe fn(*mut T) -> (*mut *mut T, *mut *mut T);

/// Puts `n` at the front of the list whose first node is `*head`.
///
/// # Safety
/// `n` and every node on the list are valid and owned by the caller; `n` is
/// on no list through these links.
pub(crate) unsafe fn push_front<T>(head: &mut *mut T, n: *mut T, links: Links<T>) {
    let (next, prev) = links(n);
    *prev = null_mut();
    *next = *head;
    if !head.is_null() {
        *links(*head).1 = n;
    }
    *head = n;
}

/// Takes `n` off the list whose first node is `*head`.
///
/// # Safety
/// As `push_front`, with `n` on this list.
pub(crate) unsafe fn unlink<T>(head: &mut *mut T, n: *mut T, links: Links<T>) {
    let (next, prev) = links(n);
    if prev.read().is_null() {
        *head = *next;
    } else {
        *links(*prev).0 = *next;
    }
    if !next.read().is_null() {
        *links(*next).1 = *prev;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Node {
        next: *mut Node,
        prev: *mut Node,
    }

    unsafe fn links(n: *mut Node) -> (*mut *mut Node, *mut *mut Node) {
        (&raw mut (*n).next, &raw mut (*n).prev)
    }

    fn collect(mut n: *mut Node) -> Vec<*mut Node> {
        let mut v = Vec::new();
        while !n.is_null() {
            v.push(n);
            // SAFETY: the nodes live on the test's stack for its whole run.
            n = unsafe { (*n).next };
        }
        v
    }

    #[test]
    fn push_and_unlink_keep_both_directions() {
        let mut nodes: Vec<Node> = (0..3)
            .map(|_| Node {
                next: null_mut(),
                prev: null_mut(),
            })
            .collect();
        let p: Vec<*mut Node> = nodes.iter_mut().map(|n| n as *mut Node).collect();
        let mut head = null_mut();
        // SAFETY: the nodes outlive the list, each is pushed once.
        unsafe {
            for &n in &p {
                push_front(&mut head, n, links);
            }
            assert_eq!(collect(head), vec![p[2], p[1], p[0]]);
            unlink(&mut head, p[1], links);
            assert_eq!(collect(head), vec![p[2], p[0]]);
            assert_eq!((*p[0]).prev, p[2]);
            unlink(&mut head, p[2], links);
            assert_eq!(collect(head), vec![p[0]]);
            assert!((*p[0]).prev.is_null());
            unlink(&mut head, p[0], links);
            assert!(head.is_null());
        }
    }
}
