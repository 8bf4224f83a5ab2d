//! The daemon against the simulator.
