package node

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
)

// lookupUser resolves the application check's user (monitors.application.user)
// in the passwd and group databases. Switching to it needs root: a node
// that runs unprivileged (the packaged unit's User=ringway) can only run
// the check as itself.
// It is a variable so tests can stand in for the system's databases.
var lookupUser = func(name string) (uid, gid uint32, groups []uint32, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("%w (create the account, or name an existing unprivileged one such as nobody)", err)
	}
	parse := func(s string) (uint32, error) {
		v, err := strconv.ParseUint(s, 10, 32)
		return uint32(v), err
	}
	if uid, err = parse(u.Uid); err != nil {
		return 0, 0, nil, fmt.Errorf("user %s: uid %q: %w", name, u.Uid, err)
	}
	if gid, err = parse(u.Gid); err != nil {
		return 0, 0, nil, fmt.Errorf("user %s: gid %q: %w", name, u.Gid, err)
	}
	if uid == 0 {
		return 0, 0, nil, fmt.Errorf("user %s has uid 0; name an unprivileged account", name)
	}
	if me := os.Geteuid(); me != 0 && uint32(me) != uid {
		return 0, 0, nil, fmt.Errorf("ringway runs as uid %d, not root, so it cannot run the check as %s; leave monitors.application.user empty (the check then runs as ringway's own user)", me, name)
	}
	ids, _ := u.GroupIds()
	for _, g := range ids {
		if v, err := parse(g); err == nil {
			groups = append(groups, v)
		}
	}
	return uid, gid, groups, nil
}
