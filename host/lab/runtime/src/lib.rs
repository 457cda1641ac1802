//! Real database server processes for the lab.
