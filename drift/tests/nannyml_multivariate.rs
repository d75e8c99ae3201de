//! NannyML agreement of `drift::multivariate` (to be written).
