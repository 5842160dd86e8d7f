//! Test harness: network namespaces with TAP/veth and kernel peers (being written).
