package ringnet

// WindowSize is the number of packet counters behind the newest one that
// each peer's replay window (internal/replay) remembers. Datagrams older
// than that are dropped as replays. 1024 covers the reordering two paths can
// produce at ring rates by a wide margin (a hop is a handful of datagrams).
const WindowSize = 1024
