package config

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"
)

// identityProblem is a problem with the user or group key.
type identityProblem struct{ key, msg string }

// checkIdentity validates the user and group keys against the system's
// user and group databases, so that `-check` finds a misspelt account
// before a daemon started as root needs it to drop its privileges.
func checkIdentity(userName, groupName string) []identityProblem {
	var ps []identityProblem
	if userName == "" {
		if groupName != "" {
			ps = append(ps, identityProblem{"group", "needs user: a daemon changes its group only when it changes its user"})
		}
		return ps
	}
	if strings.TrimSpace(userName) != userName {
		ps = append(ps, identityProblem{"user", fmt.Sprintf("%q has leading or trailing space", userName)})
	} else if u, err := LookupUser(userName); err != nil {
		ps = append(ps, identityProblem{"user", err.Error()})
	} else if u.Uid == "0" {
		ps = append(ps, identityProblem{"user", fmt.Sprintf("%q is root; leave user empty to keep the identity the daemon starts with", userName)})
	}
	if groupName != "" {
		if strings.TrimSpace(groupName) != groupName {
			ps = append(ps, identityProblem{"group", fmt.Sprintf("%q has leading or trailing space", groupName)})
		} else if g, err := LookupGroup(groupName); err != nil {
			ps = append(ps, identityProblem{"group", err.Error()})
		} else if g.Gid == "0" {
			ps = append(ps, identityProblem{"group", fmt.Sprintf("%q is root's group (gid 0)", groupName)})
		}
	}
	return ps
}

// LookupUser finds the account the user key names: a user name, or a
// numeric uid that the user database knows.
func LookupUser(name string) (*user.User, error) {
	u, err := user.Lookup(name)
	if err == nil {
		return u, nil
	}
	if _, nerr := strconv.ParseUint(name, 10, 32); nerr == nil {
		if u, err := user.LookupId(name); err == nil {
			return u, nil
		}
	}
	return nil, fmt.Errorf("no such user %q", name)
}

// LookupGroup finds the group the group key names: a group name, or a
// numeric gid that the group database knows.
func LookupGroup(name string) (*user.Group, error) {
	g, err := user.LookupGroup(name)
	if err == nil {
		return g, nil
	}
	if _, nerr := strconv.ParseUint(name, 10, 32); nerr == nil {
		if g, err := user.LookupGroupId(name); err == nil {
			return g, nil
		}
	}
	return nil, fmt.Errorf("no such group %q", name)
}
