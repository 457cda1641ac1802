//! What several layers share and no layer owns: plain values and rules with
//! no dependency on the rest of the crate.

pub mod names;
