// Package archive turns layer tarballs into directories and directories back
// into layer tarballs.
//
// Extraction treats every archive as hostile: each name is resolved with
// openat2(RESOLVE_IN_ROOT) from a file descriptor of the target directory, so
// "..", absolute names and symlinks (however chained) can never reach outside
// it; metadata changes go through descriptors or AT_SYMLINK_NOFOLLOW so they
// never follow a link; device nodes are not created; sizes and counts are
// bounded. OCI whiteouts (".wh.name", ".wh..wh..opq") become overlayfs
// whiteouts (a 0/0 character device, the trusted.overlay.opaque xattr), or are
// applied as deletions when flattening layers into one directory. Diff does
// the reverse: it writes a directory (an overlay upper) as a tar stream with
// OCI whiteouts.
package archive
