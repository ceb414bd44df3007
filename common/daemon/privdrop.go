package daemon

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"tern/common/config"
)

// ErrStillRoot is returned when a daemon was asked to leave root but could
// still regain it afterwards; the daemon must exit rather than serve.
var ErrStillRoot = errors.New("daemon: privileges not dropped: root could be regained")

// Identity is the account a daemon runs as after DropPrivileges.
type Identity struct {
	UID    int
	GID    int
	Groups []int // supplementary groups
}

// DropPrivileges switches a daemon started as root to the configured user
// and group. It is called after the listeners are open (binding a port below
// 1024 needs root without socket activation) and before any network input is
// read, so that a flaw in a protocol handler never runs as root.
//
// Without cfg.User, or when the process is not root (started by an
// unprivileged user, or by systemd with User=), it does nothing: the identity
// the daemon was given is kept. Otherwise it sets the supplementary groups
// (the user's groups in the group database, plus the primary group), then the
// gid, then the uid; on Linux Go applies setgid and setuid to every thread of
// the process. Any failure is returned, and the daemon must exit: it never
// goes on serving as root after it was asked not to.
func DropPrivileges(cfg *config.Config) error {
	if cfg.User == "" || os.Geteuid() != 0 {
		return nil
	}
	id, err := ResolveIdentity(cfg.User, cfg.Group)
	if err != nil {
		return err
	}
	return setIdentity(id)
}

// ResolveIdentity finds the uid, gid and supplementary groups for the user
// and group keys of tern.toml. An empty group means the user's primary
// group. Root (uid or gid 0) is refused: dropping to it would drop nothing.
func ResolveIdentity(userName, groupName string) (Identity, error) {
	u, err := config.LookupUser(userName)
	if err != nil {
		return Identity{}, fmt.Errorf("drop privileges: %w", err)
	}
	var id Identity
	if id.UID, err = strconv.Atoi(u.Uid); err != nil {
		return Identity{}, fmt.Errorf("drop privileges: user %q has a non-numeric uid %q", userName, u.Uid)
	}
	gid := u.Gid
	if groupName != "" {
		g, err := config.LookupGroup(groupName)
		if err != nil {
			return Identity{}, fmt.Errorf("drop privileges: %w", err)
		}
		gid = g.Gid
	}
	if id.GID, err = strconv.Atoi(gid); err != nil {
		return Identity{}, fmt.Errorf("drop privileges: group of %q has a non-numeric gid %q", userName, gid)
	}
	if id.UID == 0 || id.GID == 0 {
		return Identity{}, fmt.Errorf("drop privileges: user %q group %q is root (uid %d gid %d)", userName, groupName, id.UID, id.GID)
	}
	gids, err := u.GroupIds()
	if err != nil {
		return Identity{}, fmt.Errorf("drop privileges: groups of %q: %w", userName, err)
	}
	id.Groups = []int{id.GID}
	for _, s := range gids {
		g, err := strconv.Atoi(s)
		if err != nil {
			return Identity{}, fmt.Errorf("drop privileges: user %q is in a group with a non-numeric gid %q", userName, s)
		}
		// Root's group would give back what the uid change takes away.
		if g != 0 && g != id.GID {
			id.Groups = append(id.Groups, g)
		}
	}
	return id, nil
}

// setIdentity changes groups first: once the uid is not 0 the process may no
// longer change them.
func setIdentity(id Identity) error {
	if err := syscall.Setgroups(id.Groups); err != nil {
		return fmt.Errorf("drop privileges: setgroups %v: %w", id.Groups, err)
	}
	if err := syscall.Setgid(id.GID); err != nil {
		return fmt.Errorf("drop privileges: setgid %d: %w", id.GID, err)
	}
	if err := syscall.Setuid(id.UID); err != nil {
		return fmt.Errorf("drop privileges: setuid %d: %w", id.UID, err)
	}
	// setuid(2) as root sets the real, effective and saved uid; check all of
	// them and that the way back is closed, as a daemon that silently kept
	// root would be worse than one that does not start.
	if os.Getuid() != id.UID || os.Geteuid() != id.UID || os.Getgid() != id.GID || os.Getegid() != id.GID {
		return fmt.Errorf("%w: uid %d/%d gid %d/%d after switching to uid %d gid %d", ErrStillRoot,
			os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid(), id.UID, id.GID)
	}
	if err := syscall.Setuid(0); err == nil {
		return fmt.Errorf("%w: setuid(0) succeeded after switching to uid %d", ErrStillRoot, id.UID)
	}
	return nil
}
