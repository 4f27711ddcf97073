// Package builder turns a Dockerfile and a build context into an OCI image in
// berth's layer store, without any other build tool.
//
// The work is split in three layers that can be tested apart:
//
//   - Parse and Plan (parse.go, plan.go, args.go) are pure: buildkit's parser
//     and instruction packages give typed instructions, Plan resolves global
//     ARGs, prunes the stages the target does not need and orders the rest in
//     dependency levels so that independent stages build in parallel.
//   - The context side (context.go, selectsrc.go, copy.go, untar.go) reads
//     sources from the build context and writes them into a rootfs directory;
//     neither side can be escaped through "..", absolute paths or symlinks.
//   - Execution (build.go, step.go, cache.go) walks the plan, keys every step
//     by its parent key, the expanded instruction and the content of what it
//     copies, and reuses committed layers recorded in a persistent cache index.
//     It consumes a Store (layers and images) and a Runner (RUN processes),
//     both small interfaces defined in store.go.
package builder
