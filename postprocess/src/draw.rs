//! The answer drawn on the photo.
