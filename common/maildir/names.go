package maildir

import (
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Separator is the hierarchy separator of folder names (Maildir++).
const Separator = "."

// nameMax is the longest directory name the file system takes (NAME_MAX on
// Linux); a folder's encoded directory name must fit in it.
const nameMax = 255

// specialUse gives the RFC 6154 SPECIAL-USE attribute of the folders that
// Open creates.
var specialUse = map[string]string{
	"Sent":    `\Sent`,
	"Drafts":  `\Drafts`,
	"Trash":   `\Trash`,
	"Junk":    `\Junk`,
	"Archive": `\Archive`,
}

// defaultFolders are created by Open, in this order.
var defaultFolders = []string{"Sent", "Drafts", "Trash", "Junk", "Archive"}

// SpecialUse returns the RFC 6154 attribute of a folder name ("" if none).
func SpecialUse(name string) string { return specialUse[name] }

// IsInbox reports whether name denotes INBOX.
// RFC 3501 5.1: the name INBOX is case-insensitive.
func IsInbox(name string) bool { return strings.EqualFold(name, "INBOX") }

// ValidateName checks a client-supplied UTF-8 folder name. A name is refused
// when it could leave or confuse the tree: empty names or components ("",
// "a..b", ".a", "a."), "/" and "\", NUL and other control characters, the
// IMAP wildcards "%" and "*", components that spell tmp, new or cur, invalid
// UTF-8, and names whose directory would not fit in NAME_MAX.
func ValidateName(name string) error {
	if IsInbox(name) {
		return nil
	}
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: not UTF-8", ErrInvalidName)
	}
	for _, r := range name {
		switch {
		case r == '/' || r == '\\' || r == '%' || r == '*':
			return fmt.Errorf("%w: %q not allowed", ErrInvalidName, r)
		case r < 0x20 || r == 0x7f || unicode.IsControl(r):
			return fmt.Errorf("%w: control character", ErrInvalidName)
		case r == '\u2028' || r == '\u2029' || r == utf8.RuneError:
			return fmt.Errorf("%w: %U not allowed", ErrInvalidName, r)
		}
	}
	for _, c := range strings.Split(name, Separator) {
		if c == "" {
			return fmt.Errorf("%w: empty hierarchy level", ErrInvalidName)
		}
		switch strings.ToLower(c) {
		case "tmp", "new", "cur":
			return fmt.Errorf("%w: %q is reserved", ErrInvalidName, c)
		}
	}
	if len(encodeDirName(name)) > nameMax {
		return fmt.Errorf("%w: too long", ErrInvalidName)
	}
	return nil
}

// encodeDirName gives the Maildir++ directory name of a (valid, non-INBOX)
// folder: "." followed by the components in modified UTF-7, joined by ".".
func encodeDirName(name string) string {
	parts := strings.Split(name, Separator)
	for i, p := range parts {
		parts[i] = EncodeMUTF7(p)
	}
	return "." + strings.Join(parts, Separator)
}

// decodeDirName is the inverse of encodeDirName; ok is false for directory
// entries that are not folders (including tern's "..tern-deleted" leftovers)
// or that decode to an unsafe name.
func decodeDirName(dirName string) (name string, ok bool) {
	if len(dirName) < 2 || dirName[0] != '.' || dirName[1] == '.' {
		return "", false
	}
	parts := strings.Split(dirName[1:], Separator)
	for i, p := range parts {
		d, err := DecodeMUTF7(p)
		if err != nil {
			return "", false
		}
		parts[i] = d
	}
	name = strings.Join(parts, Separator)
	if IsInbox(name) || ValidateName(name) != nil || encodeDirName(name) != dirName {
		return "", false
	}
	return name, true
}

// folderDir maps a validated name to its directory under root.
func folderDir(root, name string) string {
	if IsInbox(name) {
		return root
	}
	return filepath.Join(root, encodeDirName(name))
}
