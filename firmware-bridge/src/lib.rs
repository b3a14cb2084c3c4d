//! Wire protocol to microcontroller sensor boards (tactile, force-torque, trigger) over
//! serial, and a board simulator on a pseudo-terminal. Empty until the firmware-bridge issue
//! lands; the workspace keeps its place so dependencies already point the right way.
