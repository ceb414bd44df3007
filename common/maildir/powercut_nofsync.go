//go:build powercut_nofsync

package maildir

import "path/filepath"

// skipDirSync drops the fsync of new/, the step that makes a delivered
// message's name durable: a deliberately broken build for test/powercut,
// which must then find acknowledged mail lost after a power cut.
func skipDirSync(dir string) bool { return filepath.Base(dir) == "new" }
