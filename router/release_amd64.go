package router

// storeRelease stores v at *p, ordered after every earlier load and store
// of this goroutine as seen by another CPU (the kernel reading a ring
// slot's status). On amd64 (TSO) a plain MOV does that; sync/atomic's
// StoreUint32 is an XCHG, a full barrier, and in bench-router's TCP
// profile the receive ring's status store was the router's costliest
// instruction. noinline: the compiler must not move it before the reads
// and writes of the slot that precede the call.
//
//go:noinline
func storeRelease(p *uint32, v uint32) { *p = v }
