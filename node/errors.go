package node

import "errors"

var errNoTable = errors.New("the ring has no VIP table yet; try again once the node is a member")

// errNotServing refuses VIP operations a node could only queue without
// knowing when (if ever) it will apply them: ringstate applies queued
// operations only at a token this node holds as a member of a ring with
// quorum.
var errNotServing = errors.New("this node is not a member of a ring with quorum right now (see `ringway status`), so it cannot apply VIP changes; send the operation to a member (--node ADDR) or retry once this node has rejoined")
