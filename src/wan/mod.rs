//! The WAN emulator: a TCP proxy per link with delay, jitter and fault modes.
