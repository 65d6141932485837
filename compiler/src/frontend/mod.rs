//! Frontends: read a model file into the IR.
