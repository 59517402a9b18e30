# Small seeded pseudo-random numbers, identical on CPython and MicroPython.
#
# Two shapes: a stream (XorShift32) for things that happen in sequence, and
# a stateless hash `mix(seed, n)` for values that must be computable for any
# n without stepping through the ones before it (the load model's noise at
# minute n). 32-bit arithmetic throughout, masked, so MicroPython's small
# ints and CPython's agree.

_M32 = 0xFFFFFFFF


def mix(seed, n):
    """A well-spread 32-bit value for (seed, n): a 32-bit avalanche hash
    (the finaliser shape of MurmurHash3) over seed and n."""
    h = (seed ^ (n * 0x9E3779B1)) & _M32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    h ^= h >> 16
    return h


class XorShift32:
    __slots__ = ("state",)

    def __init__(self, seed):
        self.state = (seed & _M32) or 0x6D2B79F5   # zero is a fixed point

    def next(self):
        x = self.state
        x ^= (x << 13) & _M32
        x ^= x >> 17
        x ^= (x << 5) & _M32
        self.state = x
        return x

    def below(self, n):
        """An int in [0, n)."""
        return self.next() % n
