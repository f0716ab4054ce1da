// Package workload drives and measures traffic through a lab (package lab),
// with kernel sockets at both ends, as DESIGN.md "How we measure" asks:
//
//   - The fail-over stream: an echo server (ListenEcho, UDP) in the server
//     namespace and a client (StartStream) in the client namespace sending a
//     sequence-numbered, timestamped datagram every millisecond to the server
//     through the gateway. Replies are timestamped by the kernel on arrival;
//     the report gives sent, received, lost, duplicates and the longest gap
//     between two consecutive replies (the outage a client saw).
//   - A TCP transfer (ListenTransfer, StartTransfer) of N pseudo-random bytes
//     whose SHA-256 is checked on both ends; start it before a crash, Wait
//     after.
//   - An ARP observer (StartARP) on the client's NIC: an AF_PACKET socket
//     records every ARP claim (sender IP is at sender MAC) with its time, and
//     optionally probes a list of VIPs, so a test can assert that each VIP is
//     answered by exactly one MAC outside a fail-over window.
//
// Every function takes a Netns (a *lab.Lab) and a namespace name: sockets
// are opened on a thread inside that namespace and stay there. A nil Netns
// uses the caller's namespace.
package workload
