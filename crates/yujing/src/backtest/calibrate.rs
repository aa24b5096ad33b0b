//! Calibration (filled in below).
