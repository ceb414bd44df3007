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

// LocalLogin is a Unix user's name as the local part of its envelope
// sender on local submission: the user database's name when it is a plain
// dot-atom (RFC 5322 3.2.3), else "uid" and the number, so that no user
// name can inject syntax into an address. smtpd (which learns the uid from
// the kernel) and sendmail (which shows the sender it will get) must agree,
// so both call this.
func LocalLogin(uid uint32) string {
	n := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(n); err == nil && plainLocalPart(u.Username) {
		return u.Username
	}
	return "uid" + n
}

// plainLocalPart reports whether s is a dot-atom of letters, digits and
// the few punctuation marks Unix user names use.
func plainLocalPart(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-+", r)) {
			return false
		}
	}
	return true
}
