package maildir

import "errors"

// Sentinel errors. Callers test them with errors.Is; every error returned by
// this package wraps one of these or carries the failing path.
var (
	// ErrNotFound: the folder does not exist.
	ErrNotFound = errors.New("maildir: folder not found")
	// ErrExists: the folder already exists.
	ErrExists = errors.New("maildir: folder already exists")
	// ErrInvalidName: the folder name is unsafe or malformed, or names a
	// directory that is not a plain directory of the tree (a planted symlink).
	ErrInvalidName = errors.New("maildir: invalid folder name")
	// ErrHasChildren: Delete of a folder that still has subfolders.
	ErrHasChildren = errors.New("maildir: folder has children")
	// ErrNoMessage: the message is gone (expunged, possibly by another program).
	ErrNoMessage = errors.New("maildir: no such message")
	// ErrLocked: TryLock found the lock held by another session or process.
	ErrLocked = errors.New("maildir: locked")
	// ErrUIDValidity: the folder's index was recreated (a new UIDVALIDITY)
	// since the caller read the UIDs it names, which may now be other
	// messages' (ExpungeIn).
	ErrUIDValidity = errors.New("maildir: UIDVALIDITY changed since the UIDs were read")
	// ErrInvalidFlag: a flag that is neither a known system flag nor a valid
	// keyword atom.
	ErrInvalidFlag = errors.New("maildir: invalid flag")
	// ErrCorruptIndex: the index file does not parse.
	ErrCorruptIndex = errors.New("maildir: corrupt index")
)
