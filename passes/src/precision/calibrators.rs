//! Calibrators: from a histogram of |x| to the threshold that int8 quantization clips at.
