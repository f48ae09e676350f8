//! A bounded FIFO of freed blocks (or large runs) whose reuse is delayed.

pub(super) struct Ring<const N: usize> {
    items: [usize; N],
    /// The oldest item's index.
    head: usize,
    len: usize,
}

impl<const N: usize> Ring<N> {
    pub(super) const fn new() -> Self {
        Ring {
            items: [0; N],
            head: 0,
            len: 0,
        }
    }

    /// Appends `x`; when the ring was full, returns the oldest item, which
    /// leaves the quarantine.
    pub(super) fn push(&mut self, x: usize) -> Option<usize> {
        if self.len < N {
            self.items[(self.head + self.len) % N] = x;
            self.len += 1;
            return None;
        }
        let old = core::mem::replace(&mut self.items[self.head], x);
        self.head = (self.head + 1) % N;
        Some(old)
    }
}

#[cfg(test)]
mod tests {
    use super::Ring;

    #[test]
    fn the_oldest_leaves_first_once_full() {
        let mut r = Ring::<3>::new();
        assert_eq!((r.push(1), r.push(2), r.push(3)), (None, None, None));
        assert_eq!(r.push(4), Some(1));
        assert_eq!(r.push(5), Some(2));
        assert_eq!(r.push(6), Some(3));
        assert_eq!(r.push(7), Some(4));
    }
}
