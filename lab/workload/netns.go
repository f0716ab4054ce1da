package workload

// Netns runs fn on a thread inside network namespace ns. *lab.Lab satisfies
// it. Every function of this package opens its sockets inside fn, so they
// belong to ns for their whole life; the goroutines that use them afterwards
// may run anywhere. A nil Netns means the caller's own namespace (unit tests
// over loopback).
type Netns interface {
	Do(ns string, fn func() error) error
}

func in(r Netns, ns string, fn func() error) error {
	if r == nil {
		return fn()
	}
	return r.Do(ns, fn)
}
