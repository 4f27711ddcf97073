// Package e2e holds berth's end-to-end tests: they build the berth binary
// and run it as a user would on the root demo and on projects the tests
// write, then inspect the machine (processes, mounts, cgroups, links,
// addresses, routes, nftables rules, state files, volumes).
//
// Every test gets its own state roots and its own network namespace that
// stands for the host: berth runs under `nsenter --net`, so its bridges,
// nftables table and published ports on 127.0.0.1 are private to the test,
// and the residue checks compare that namespace before and after without
// noise from anything else on the machine. Mounts, cgroups and processes
// are machine-wide and are matched by the test's container ids and paths.
package e2e
