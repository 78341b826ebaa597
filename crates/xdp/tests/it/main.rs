//! tacvs-xdp integration tests: the program on crafted frames
//! (`BPF_PROG_TEST_RUN`), end to end in network namespaces, and the
//! real-server set-up. They need root and BPF: under `CI=true` a refusal
//! fails the test; elsewhere, without root, a test prints why and returns.

mod e2e;
mod harness;
mod netns;
mod progtest;
