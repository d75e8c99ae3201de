//! NannyML agreement of `drift::dle` (to be written).
