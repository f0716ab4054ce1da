//go:build !amd64

package router

import "sync/atomic"

// storeRelease stores v at *p, ordered after every earlier load and store
// of this goroutine (release_amd64.go says why it is not always atomic).
func storeRelease(p *uint32, v uint32) { atomic.StoreUint32(p, v) }
