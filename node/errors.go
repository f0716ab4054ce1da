package node

import "errors"

var errNoTable = errors.New("the ring has no VIP table yet; try again once the node is a member")
