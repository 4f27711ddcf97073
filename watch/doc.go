// Package watch is the long-running controller behind `berth watch` and
// `berth up --watch`: file changes (fsnotify) are debounced into batches;
// a batch that touches a project input (compose files, include/extends
// targets, .env, env_file, config and secret files) reloads the project and
// kicks the reconciler loop, which touches only the services whose desired
// state moved; a batch that touches develop.watch paths runs their actions
// (sync, rebuild, restart, sync+restart, sync+exec). Container state changes
// and a resync timer kick the loop too, so drift is repaired between edits.
package watch
