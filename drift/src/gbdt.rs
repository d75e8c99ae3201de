//! A deterministic histogram gradient-boosting regressor: the loss models
//! behind [`crate::dle`]. NannyML fits LightGBM's `LGBMRegressor()` with
//! its default hyperparameters; this is our own re-implementation of the
//! parts of LightGBM those defaults use, close enough that the DLE
//! estimates agree with NannyML's (see `tests/nannyml_dle.rs`), not a
//! bit-for-bit port.
//!
//! What it follows from LightGBM (defaults of 4.5):
//! - L2 loss (gradient `prediction − target`, hessian 1), boosting from
//!   the target's mean, 100 rounds with learning rate 0.1, no bagging and
//!   no feature subsampling, so no randomness at all;
//! - leaf-wise (best-first) growth up to 31 leaves, a split only where it
//!   strictly lowers the loss, `min_data_in_leaf` 20,
//!   `min_sum_hessian_in_leaf` 1e-3, `lambda_l2` 0;
//! - numeric features in at most 255 bins cut at midpoints between
//!   distinct reference values, greedily of about equal counts
//!   (LightGBM's `GreedyFindBin`, at least 3 rows a bin); a missing value
//!   has its own bin, and each split sends it to whichever side lowers the
//!   loss more. A feature without missing values in the reference treats a
//!   later missing value as 0.0, as LightGBM does;
//! - categorical features as LightGBM's categorical splits: with at most 4
//!   categories one category against the rest; beyond, categories seen in
//!   at least 10 rows of the leaf are ordered by
//!   `sum_gradient / (count + cat_smooth 10)` and the best prefix from
//!   either end (at most 32 categories and half of them, evaluated every
//!   100 rows, leaving at least 100 rows right) goes left, scored and
//!   valued with `cat_l2` 10; the low end wins a tie, as LightGBM scans it
//!   first. A category the reference never had (and rare ones not
//!   ordered) goes right.
//!
//! Where it differs: the bin boundaries are not LightGBM's exactly (no
//! special bin around zero, no sampling of 200 000 rows to bin), ties
//! between equal gains break by feature and threshold order, and more
//! than 255 categories keep the 255 most frequent (the rest are treated as
//! unseen). Sums are in `f64` in one thread, so a fit is reproducible to
//! the bit.
//!
//! What it must not do: I/O, or anything random.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// LightGBM's default hyperparameters, the only ones NannyML's DLE uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Params {
    pub rounds: usize,
    pub learning_rate: f64,
    pub num_leaves: usize,
    pub min_data_in_leaf: u32,
    pub min_sum_hessian: f64,
    pub max_bin: usize,
    pub min_data_in_bin: u32,
    pub max_cat_to_onehot: usize,
    pub max_cat_threshold: usize,
    pub cat_smooth: f64,
    pub cat_l2: f64,
    pub min_data_per_group: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            rounds: 100,
            learning_rate: 0.1,
            num_leaves: 31,
            min_data_in_leaf: 20,
            min_sum_hessian: 1e-3,
            max_bin: 255,
            min_data_in_bin: 3,
            max_cat_to_onehot: 4,
            max_cat_threshold: 32,
            cat_smooth: 10.0,
            cat_l2: 10.0,
            min_data_per_group: 100,
        }
    }
}

/// One column of model input.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Column<'a> {
    Numeric(&'a [Option<f64>]),
    /// A numeric column without missing values (the model's prediction).
    Plain(&'a [f64]),
    Categorical(&'a [Option<String>]),
}

impl Column<'_> {
    fn len(&self) -> usize {
        match self {
            Column::Numeric(v) => v.len(),
            Column::Plain(v) => v.len(),
            Column::Categorical(v) => v.len(),
        }
    }
}

/// How one feature's values map to bin codes, learnt from the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum FeatureBins {
    /// Value bins `0..=upper.len()`: a value goes to the first bin whose
    /// upper bound is not below it (the last bin has none). `missing` is
    /// the missing values' bin when the reference had any; otherwise a
    /// missing value is binned as 0.0.
    Numeric {
        upper: Vec<f64>,
        missing: Option<u8>,
    },
    /// Codes `0..categories.len()` (and `missing`, the missing value as a
    /// category of its own, as NannyML imputes it); `unseen` for anything
    /// else, a code that never occurs in the reference.
    Categorical {
        categories: BTreeMap<String, u8>,
        missing: Option<u8>,
        unseen: u8,
    },
}

impl FeatureBins {
    fn bins(&self) -> usize {
        match self {
            FeatureBins::Numeric { upper, missing } => {
                upper.len() + 1 + usize::from(missing.is_some())
            }
            FeatureBins::Categorical { unseen, .. } => usize::from(*unseen) + 1,
        }
    }

    fn is_categorical(&self) -> bool {
        matches!(self, FeatureBins::Categorical { .. })
    }

    fn numeric_code(upper: &[f64], missing: Option<u8>, value: Option<f64>) -> u8 {
        match (value, missing) {
            (Some(v), _) => value_bin(upper, v),
            (None, Some(m)) => m,
            (None, None) => value_bin(upper, 0.0),
        }
    }
}

fn value_bin(upper: &[f64], v: f64) -> u8 {
    // At most 254 bounds, so the index fits.
    upper.partition_point(|&b| b < v) as u8
}

/// The bin layout of every feature, learnt from the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Binner {
    features: Vec<FeatureBins>,
}

/// Rows binned by a [`Binner`], row-major so one row's codes are
/// contiguous (histograms gather rows by index).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Binned {
    rows: usize,
    features: usize,
    codes: Vec<u8>,
}

impl Binner {
    /// Learns bins from the reference's columns (equal lengths).
    pub(crate) fn fit(columns: &[Column<'_>], params: &Params) -> Binner {
        let features = columns
            .iter()
            .map(|c| match *c {
                Column::Numeric(v) => {
                    let mut xs: Vec<f64> = v.iter().flatten().copied().collect();
                    let missing = (xs.len() < v.len()).then_some(());
                    let upper = numeric_bounds(&mut xs, params);
                    let missing = missing.map(|()| (upper.len() + 1) as u8);
                    FeatureBins::Numeric { upper, missing }
                }
                Column::Plain(v) => {
                    let mut xs = v.to_vec();
                    FeatureBins::Numeric {
                        upper: numeric_bounds(&mut xs, params),
                        missing: None,
                    }
                }
                Column::Categorical(v) => categorical_bins(v),
            })
            .collect();
        Binner { features }
    }

    /// Bins rows (columns in the order of [`Binner::fit`], equal lengths).
    pub(crate) fn bin(&self, columns: &[Column<'_>]) -> Binned {
        let rows = columns.first().map_or(0, Column::len);
        let nf = self.features.len();
        debug_assert_eq!(columns.len(), nf);
        let mut codes = vec![0u8; rows * nf];
        for (f, (bins, column)) in self.features.iter().zip(columns).enumerate() {
            match (bins, *column) {
                (FeatureBins::Numeric { upper, missing }, Column::Numeric(v)) => {
                    for (r, x) in v.iter().enumerate() {
                        codes[r * nf + f] = FeatureBins::numeric_code(upper, *missing, *x);
                    }
                }
                (FeatureBins::Numeric { upper, missing }, Column::Plain(v)) => {
                    for (r, x) in v.iter().enumerate() {
                        codes[r * nf + f] = FeatureBins::numeric_code(upper, *missing, Some(*x));
                    }
                }
                (
                    FeatureBins::Categorical {
                        categories,
                        missing,
                        unseen,
                    },
                    Column::Categorical(v),
                ) => {
                    for (r, x) in v.iter().enumerate() {
                        codes[r * nf + f] = match x {
                            Some(s) => categories.get(s).copied().unwrap_or(*unseen),
                            None => missing.unwrap_or(*unseen),
                        };
                    }
                }
                // The caller passes the columns it fitted on; a kind
                // mismatch is a caller bug, and every row then looks
                // unseen rather than panicking.
                (FeatureBins::Categorical { unseen, .. }, _) => {
                    for r in 0..rows {
                        codes[r * nf + f] = *unseen;
                    }
                }
                (FeatureBins::Numeric { upper, missing }, Column::Categorical(_)) => {
                    let code = FeatureBins::numeric_code(upper, *missing, None);
                    for r in 0..rows {
                        codes[r * nf + f] = code;
                    }
                }
            }
        }
        Binned {
            rows,
            features: nf,
            codes,
        }
    }
}

/// Upper bounds of the value bins of `xs` (finite; sorted here).
fn numeric_bounds(xs: &mut [f64], params: &Params) -> Vec<f64> {
    xs.sort_by(f64::total_cmp);
    let mut distinct: Vec<f64> = Vec::new();
    let mut counts: Vec<u32> = Vec::new();
    for &x in xs.iter() {
        if distinct.last() == Some(&x) {
            *counts.last_mut().expect("a count") += 1;
        } else {
            distinct.push(x);
            counts.push(1);
        }
    }
    let mut upper = Vec::new();
    if distinct.len() < 2 {
        return upper;
    }
    let mid = |i: usize| distinct[i] + (distinct[i + 1] - distinct[i]) / 2.0;
    let max_bin = params.max_bin;
    if distinct.len() <= max_bin {
        let mut current = 0;
        for (i, &c) in counts[..counts.len() - 1].iter().enumerate() {
            current += c;
            if current >= params.min_data_in_bin {
                upper.push(mid(i));
                current = 0;
            }
        }
        return upper;
    }
    // More distinct values than bins: values frequent enough to fill a bin
    // alone get one; the rest share the remaining bins in about equal
    // counts (LightGBM's GreedyFindBin).
    let total: f64 = xs.len() as f64;
    let mean_size = total / max_bin as f64;
    let big: Vec<bool> = counts.iter().map(|&c| f64::from(c) >= mean_size).collect();
    let big_count = big.iter().filter(|&&b| b).count();
    let mut rest_bins = max_bin.saturating_sub(big_count).max(1);
    let mut rest_rows: f64 = counts
        .iter()
        .zip(&big)
        .filter(|(_, b)| !**b)
        .map(|(&c, _)| f64::from(c))
        .sum();
    let mut target = rest_rows / rest_bins as f64;
    let mut current = 0.0;
    for i in 0..distinct.len() - 1 {
        if !big[i] {
            rest_rows -= f64::from(counts[i]);
        }
        current += f64::from(counts[i]);
        if big[i] || current >= target || (big[i + 1] && current >= (target * 0.5).max(1.0)) {
            upper.push(mid(i));
            current = 0.0;
            if !big[i] {
                rest_bins = rest_bins.saturating_sub(1).max(1);
                target = rest_rows / rest_bins as f64;
            }
            if upper.len() >= max_bin - 1 {
                break;
            }
        }
    }
    upper
}

fn categorical_bins(values: &[Option<String>]) -> FeatureBins {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut missing_rows = 0usize;
    for v in values {
        match v {
            Some(s) => *counts.entry(s.as_str()).or_default() += 1,
            None => missing_rows += 1,
        }
    }
    // 256 codes: up to 255 categories (the missing value counted as one)
    // and the unseen code.
    let room = 255 - usize::from(missing_rows > 0);
    let mut kept: Vec<(&str, usize)> = counts.into_iter().collect();
    if kept.len() > room {
        kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        kept.truncate(room);
        kept.sort_by(|a, b| a.0.cmp(b.0));
    }
    let categories: BTreeMap<String, u8> = kept
        .iter()
        .enumerate()
        .map(|(i, (s, _))| ((*s).to_string(), i as u8))
        .collect();
    let n = categories.len();
    let missing = (missing_rows > 0).then_some(n as u8);
    let unseen = (n + usize::from(missing.is_some())) as u8;
    FeatureBins::Categorical {
        categories,
        missing,
        unseen,
    }
}

/// A set of bin codes (the ones a split sends left).
type BinSet = [u64; 4];

fn contains(set: &BinSet, code: u8) -> bool {
    set[usize::from(code >> 6)] >> (code & 63) & 1 == 1
}

fn insert(set: &mut BinSet, code: usize) {
    set[code >> 6] |= 1 << (code & 63);
}

/// An internal node: rows whose code of `feature` is in `left_bins` go
/// left. A child `>= 0` is a node, `< 0` the leaf `!child`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Node {
    feature: u16,
    left_bins: BinSet,
    left: i32,
    right: i32,
}

/// One boosting round's tree; leaf values already scaled by the learning
/// rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tree {
    nodes: Vec<Node>,
    leaves: Vec<f64>,
}

/// The fitted ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Gbdt {
    init: f64,
    trees: Vec<Tree>,
}

/// A histogram bin: the gradient sum and row count of one code (the L2
/// hessian is 1 a row, so the count is the hessian sum).
#[derive(Debug, Clone, Copy, Default)]
struct HistBin {
    gradient: f64,
    count: u32,
}

/// The best split of a leaf.
#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    /// Loss reduction over not splitting.
    gain: f64,
    left_bins: BinSet,
    left_gradient: f64,
    left_count: u32,
    left_output: f64,
    right_output: f64,
}

/// A leaf of the tree being grown: its rows are `order[start..end]`.
struct Leaf {
    start: usize,
    end: usize,
    gradient: f64,
    hist: usize,
    best: Option<Split>,
    /// The node and side pointing at this leaf (none for the root).
    parent: Option<(usize, bool)>,
    output: f64,
}

/// Scratch and layout shared by the rounds of one fit.
struct Grower<'a> {
    x: &'a Binned,
    params: &'a Params,
    offsets: Vec<usize>,
    categorical: Vec<bool>,
    /// The missing values' bin of each numeric feature that has one.
    missing: Vec<Option<usize>>,
    total_bins: usize,
    hists: Vec<HistBin>,
    order: Vec<u32>,
    scratch: Vec<u32>,
    sorted: Vec<(f64, usize)>,
}

impl Gbdt {
    /// Fits `targets` (finite, one per row of `x`, at least one row).
    pub(crate) fn fit(binner: &Binner, x: &Binned, targets: &[f64], params: &Params) -> Gbdt {
        let n = x.rows;
        debug_assert_eq!(targets.len(), n);
        let init = targets.iter().sum::<f64>() / n as f64;
        let mut offsets = Vec::with_capacity(binner.features.len() + 1);
        let mut total_bins = 0;
        for f in &binner.features {
            offsets.push(total_bins);
            total_bins += f.bins();
        }
        let mut grower = Grower {
            x,
            params,
            offsets,
            categorical: binner
                .features
                .iter()
                .map(FeatureBins::is_categorical)
                .collect(),
            missing: binner
                .features
                .iter()
                .map(|f| match f {
                    FeatureBins::Numeric { missing, .. } => missing.map(usize::from),
                    FeatureBins::Categorical { .. } => None,
                })
                .collect(),
            total_bins,
            hists: vec![HistBin::default(); total_bins * params.num_leaves],
            order: Vec::with_capacity(n),
            scratch: Vec::with_capacity(n),
            sorted: Vec::new(),
        };
        let mut predictions = vec![init; n];
        let mut gradients = vec![0.0; n];
        let mut trees = Vec::with_capacity(params.rounds);
        for _ in 0..params.rounds {
            for ((g, p), t) in gradients.iter_mut().zip(&predictions).zip(targets) {
                *g = p - t;
            }
            let Some((tree, leaves)) = grower.grow(&gradients) else {
                // No leaf can be split any more: later rounds would fit
                // the same constant, so LightGBM stops here too.
                break;
            };
            for (leaf, &(start, end)) in leaves.iter().enumerate() {
                let step = tree.leaves[leaf];
                for &r in &grower.order[start..end] {
                    predictions[r as usize] += step;
                }
            }
            trees.push(tree);
        }
        Gbdt { init, trees }
    }

    /// Predictions for the rows of `x` (binned by the same binner).
    pub(crate) fn predict(&self, x: &Binned) -> Vec<f64> {
        let mut out = vec![self.init; x.rows];
        if x.features == 0 {
            return out;
        }
        // Tree by tree, so one tree's nodes stay in cache over all rows,
        // and a block of rows at a time, so their independent walks
        // overlap instead of each waiting on its own loads.
        const BLOCK: usize = 8;
        let nf = x.features;
        for tree in &self.trees {
            if tree.nodes.is_empty() {
                out.iter_mut().for_each(|o| *o += tree.leaves[0]);
                continue;
            }
            for (outs, codes) in out.chunks_mut(BLOCK).zip(x.codes.chunks(BLOCK * nf)) {
                let mut at = [0i32; BLOCK];
                let live = outs.len();
                let mut walking = true;
                while walking {
                    walking = false;
                    for (k, a) in at[..live].iter_mut().enumerate() {
                        if *a >= 0 {
                            let node = &tree.nodes[*a as usize];
                            let code = codes[k * nf + usize::from(node.feature)];
                            *a = if contains(&node.left_bins, code) {
                                node.left
                            } else {
                                node.right
                            };
                            walking = true;
                        }
                    }
                }
                for (o, a) in outs.iter_mut().zip(at) {
                    *o += tree.leaves[!a as usize];
                }
            }
        }
        out
    }
}

impl Grower<'_> {
    /// Grows one tree on `gradients`; `None` when the root cannot be
    /// split. Also returns each leaf's range of `self.order`.
    fn grow(&mut self, gradients: &[f64]) -> Option<(Tree, Vec<(usize, usize)>)> {
        let n = self.x.rows;
        self.order.clear();
        self.order.extend(0..n as u32);
        let root_gradient: f64 = gradients.iter().sum();
        self.build_hist(0, 0, n, gradients);
        let mut leaves = vec![Leaf {
            start: 0,
            end: n,
            gradient: root_gradient,
            hist: 0,
            best: None,
            parent: None,
            output: 0.0,
        }];
        leaves[0].best = self.best_split(0, root_gradient, n as u32);
        let mut nodes: Vec<Node> = Vec::new();
        while leaves.len() < self.params.num_leaves {
            // The leaf whose best split gains most (the first on ties).
            let mut chosen: Option<(usize, f64)> = None;
            for (i, leaf) in leaves.iter().enumerate() {
                if let Some(s) = leaf.best
                    && chosen.is_none_or(|(_, g)| s.gain > g)
                {
                    chosen = Some((i, s.gain));
                }
            }
            let Some((li, _)) = chosen else { break };
            let split = leaves[li].best.expect("a split");
            let (start, end) = (leaves[li].start, leaves[li].end);
            let mid = self.partition(start, end, split.feature, &split.left_bins);
            debug_assert_eq!(mid - start, split.left_count as usize);
            let node = nodes.len();
            let new_leaf = leaves.len();
            nodes.push(Node {
                feature: split.feature as u16,
                left_bins: split.left_bins,
                left: !(li as i32),
                right: !(new_leaf as i32),
            });
            if let Some((p, is_left)) = leaves[li].parent {
                if is_left {
                    nodes[p].left = node as i32;
                } else {
                    nodes[p].right = node as i32;
                }
            }
            // From the histogram, as LightGBM, rather than another pass
            // over the rows.
            let left_gradient = split.left_gradient;
            let right_gradient = leaves[li].gradient - left_gradient;
            // Histogram of the smaller child by its rows, of the larger by
            // subtraction from the parent's.
            let parent_hist = leaves[li].hist;
            let new_hist = new_leaf;
            let left_smaller = mid - start <= end - mid;
            let (small_start, small_end) = if left_smaller {
                (start, mid)
            } else {
                (mid, end)
            };
            self.build_hist(new_hist, small_start, small_end, gradients);
            self.subtract_hist(parent_hist, new_hist);
            let (left_hist, right_hist) = if left_smaller {
                (new_hist, parent_hist)
            } else {
                (parent_hist, new_hist)
            };
            leaves[li] = Leaf {
                start,
                end: mid,
                gradient: left_gradient,
                hist: left_hist,
                best: None,
                parent: Some((node, true)),
                output: split.left_output,
            };
            leaves.push(Leaf {
                start: mid,
                end,
                gradient: right_gradient,
                hist: right_hist,
                best: None,
                parent: Some((node, false)),
                output: split.right_output,
            });
            leaves[li].best = self.best_split(left_hist, left_gradient, (mid - start) as u32);
            leaves[new_leaf].best = self.best_split(right_hist, right_gradient, (end - mid) as u32);
        }
        if nodes.is_empty() {
            return None;
        }
        let lr = self.params.learning_rate;
        let tree = Tree {
            nodes,
            leaves: leaves.iter().map(|l| l.output * lr).collect(),
        };
        let ranges = leaves.iter().map(|l| (l.start, l.end)).collect();
        Some((tree, ranges))
    }

    fn hist(&self, slot: usize) -> &[HistBin] {
        &self.hists[slot * self.total_bins..(slot + 1) * self.total_bins]
    }

    fn build_hist(&mut self, slot: usize, start: usize, end: usize, gradients: &[f64]) {
        let nf = self.x.features;
        let tb = self.total_bins;
        let hist = &mut self.hists[slot * tb..(slot + 1) * tb];
        hist.fill(HistBin::default());
        for &r in &self.order[start..end] {
            let r = r as usize;
            let g = gradients[r];
            let row = &self.x.codes[r * nf..(r + 1) * nf];
            for (&code, &offset) in row.iter().zip(&self.offsets) {
                let b = &mut hist[offset + usize::from(code)];
                b.gradient += g;
                b.count += 1;
            }
        }
    }

    /// `hists[parent] -= hists[child]`.
    fn subtract_hist(&mut self, parent: usize, child: usize) {
        let tb = self.total_bins;
        let (lo, hi) = self.hists.split_at_mut(parent.max(child) * tb);
        let (p, c) = if parent < child {
            (&mut lo[parent * tb..(parent + 1) * tb], &hi[..tb])
        } else {
            (&mut hi[..tb], &lo[child * tb..(child + 1) * tb])
        };
        for (pb, cb) in p.iter_mut().zip(c.iter()) {
            pb.gradient -= cb.gradient;
            pb.count -= cb.count;
        }
    }

    /// Stable partition of `order[start..end]` by the split; returns where
    /// the right rows begin.
    fn partition(&mut self, start: usize, end: usize, feature: usize, left: &BinSet) -> usize {
        let nf = self.x.features;
        let codes = &self.x.codes;
        self.scratch.clear();
        self.scratch.resize(end - start, 0);
        let (mut write, mut aside) = (start, 0);
        // Branch-free: each row is written to both places and only the
        // right cursor advances; which side is unpredictable, and a
        // mispredicted branch per row cost more than the extra store.
        for read in start..end {
            let r = self.order[read];
            let go_left = usize::from(contains(left, codes[r as usize * nf + feature]));
            self.order[write] = r;
            self.scratch[aside] = r;
            write += go_left;
            aside += 1 - go_left;
        }
        self.order[write..end].copy_from_slice(&self.scratch[..aside]);
        write
    }

    fn ok(&self, count: u32) -> bool {
        count >= self.params.min_data_in_leaf && f64::from(count) >= self.params.min_sum_hessian
    }

    /// The best split of a leaf with histogram `slot`, or none that lowers
    /// the loss.
    fn best_split(&mut self, slot: usize, gradient: f64, count: u32) -> Option<Split> {
        if count < 2 * self.params.min_data_in_leaf {
            return None;
        }
        let parent_gain = gradient * gradient / f64::from(count);
        let mut best: Option<Split> = None;
        for f in 0..self.x.features {
            let candidate = if self.categorical[f] {
                self.categorical_split(slot, f, gradient, count)
            } else {
                self.numeric_split(slot, f, gradient, count)
            };
            if let Some((gain, split)) = candidate
                && gain > parent_gain
                && best.is_none_or(|b| gain - parent_gain > b.gain)
            {
                best = Some(Split {
                    gain: gain - parent_gain,
                    ..split
                });
            }
        }
        best
    }

    fn feature_bins(&self, f: usize) -> usize {
        let end = self.offsets.get(f + 1).copied().unwrap_or(self.total_bins);
        end - self.offsets[f]
    }

    /// The best threshold of a numeric feature (its split score
    /// `G_L²/H_L + G_R²/H_R`, and the split), the missing bin (if any) on
    /// either side.
    fn numeric_split(
        &self,
        slot: usize,
        f: usize,
        gradient: f64,
        count: u32,
    ) -> Option<(f64, Split)> {
        let hist = &self.hist(slot)[self.offsets[f]..self.offsets[f] + self.feature_bins(f)];
        let missing = self.missing[f];
        let values = hist.len() - usize::from(missing.is_some());
        let missing_bin = missing.map(|m| hist[m]).unwrap_or_default();
        let sides: &[bool] = if missing_bin.count > 0 {
            &[true, false]
        } else {
            &[false]
        };
        let mut best: Option<(f64, usize, bool, f64, u32)> = None;
        for &missing_left in sides {
            let (mut lg, mut lc) = if missing_left {
                (missing_bin.gradient, missing_bin.count)
            } else {
                (0.0, 0)
            };
            for (t, b) in hist[..values - 1].iter().enumerate() {
                lg += b.gradient;
                lc += b.count;
                if !self.ok(lc) {
                    continue;
                }
                let rc = count - lc;
                if !self.ok(rc) {
                    break;
                }
                let rg = gradient - lg;
                let gain = lg * lg / f64::from(lc) + rg * rg / f64::from(rc);
                if best.is_none_or(|b| gain > b.0) {
                    best = Some((gain, t, missing_left, lg, lc));
                }
            }
        }
        let (gain, t, missing_left, lg, lc) = best?;
        let mut left_bins = [0u64; 4];
        for code in 0..=t {
            insert(&mut left_bins, code);
        }
        if missing_left && let Some(m) = missing {
            insert(&mut left_bins, m);
        }
        Some((gain, self.split(f, left_bins, gradient, count, lg, lc, 0.0)))
    }

    /// The best split of a categorical feature, as LightGBM's
    /// `FindBestThresholdCategorical`: one category against the rest when
    /// there are few, else the best prefix of the categories ordered by
    /// their smoothed mean gradient, from either end.
    fn categorical_split(
        &mut self,
        slot: usize,
        f: usize,
        gradient: f64,
        count: u32,
    ) -> Option<(f64, Split)> {
        let p = *self.params;
        let bins = self.feature_bins(f);
        let hist = &self.hists[slot * self.total_bins + self.offsets[f]
            ..slot * self.total_bins + self.offsets[f] + bins];
        // Reference categories, the missing value among them; not the
        // unseen code.
        let categories = bins - 1;
        let mut left_bins = [0u64; 4];
        if categories <= p.max_cat_to_onehot {
            let mut best: Option<(f64, usize)> = None;
            for (code, b) in hist.iter().enumerate() {
                let (lc, rc) = (b.count, count - b.count);
                if !self.ok(lc) || !self.ok(rc) {
                    continue;
                }
                let rg = gradient - b.gradient;
                let gain = b.gradient * b.gradient / f64::from(lc) + rg * rg / f64::from(rc);
                if best.is_none_or(|x| gain > x.0) {
                    best = Some((gain, code));
                }
            }
            let (gain, code) = best?;
            insert(&mut left_bins, code);
            let b = hist[code];
            return Some((
                gain,
                self.split(f, left_bins, gradient, count, b.gradient, b.count, 0.0),
            ));
        }
        let mut sorted = std::mem::take(&mut self.sorted);
        sorted.clear();
        sorted.extend(
            hist.iter()
                .enumerate()
                .filter(|(_, b)| f64::from(b.count) >= p.cat_smooth)
                .map(|(code, b)| (b.gradient / (f64::from(b.count) + p.cat_smooth), code)),
        );
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let max_categories = p.max_cat_threshold.min(sorted.len().div_ceil(2));
        let l2 = p.cat_l2;
        // (score, from the high end, categories taken, left sums)
        let mut best: Option<(f64, bool, usize, f64, u32)> = None;
        for reverse in [false, true] {
            let (mut lg, mut lc, mut group) = (0.0, 0u32, 0u32);
            for i in 0..sorted.len().min(max_categories) {
                let code = if reverse {
                    sorted[sorted.len() - 1 - i].1
                } else {
                    sorted[i].1
                };
                let b = hist[code];
                lg += b.gradient;
                lc += b.count;
                group += b.count;
                if !self.ok(lc) {
                    continue;
                }
                let rc = count - lc;
                if !self.ok(rc) || rc < p.min_data_per_group {
                    break;
                }
                if group < p.min_data_per_group {
                    continue;
                }
                group = 0;
                let rg = gradient - lg;
                let gain = lg * lg / (f64::from(lc) + l2) + rg * rg / (f64::from(rc) + l2);
                // A prefix from the high end may be the complement of one
                // from the low end, the same partition: its gain then
                // differs only by rounding, and the first found (low end
                // left) is kept, so which side an unseen category falls on
                // does not depend on the last bit.
                if best.is_none_or(|x| gain > x.0 * (1.0 + 1e-12)) {
                    best = Some((gain, reverse, i + 1, lg, lc));
                }
            }
        }
        let result = best.map(|(gain, reverse, taken, lg, lc)| {
            for i in 0..taken {
                let code = if reverse {
                    sorted[sorted.len() - 1 - i].1
                } else {
                    sorted[i].1
                };
                insert(&mut left_bins, code);
            }
            (gain, self.split(f, left_bins, gradient, count, lg, lc, l2))
        });
        self.sorted = sorted;
        result
    }

    /// A split with its children's outputs `−G / (H + l2)`.
    #[allow(clippy::too_many_arguments)]
    fn split(
        &self,
        feature: usize,
        left_bins: BinSet,
        gradient: f64,
        count: u32,
        left_gradient: f64,
        left_count: u32,
        l2: f64,
    ) -> Split {
        Split {
            feature,
            gain: 0.0,
            left_bins,
            left_gradient,
            left_count,
            left_output: -left_gradient / (f64::from(left_count) + l2),
            right_output: -(gradient - left_gradient) / (f64::from(count - left_count) + l2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit_plain(x: &[f64], y: &[f64]) -> (Binner, Gbdt) {
        let params = Params::default();
        let columns = [Column::Plain(x)];
        let binner = Binner::fit(&columns, &params);
        let binned = binner.bin(&columns);
        let model = Gbdt::fit(&binner, &binned, y, &params);
        (binner, model)
    }

    fn predict_plain(binner: &Binner, model: &Gbdt, x: &[f64]) -> Vec<f64> {
        model.predict(&binner.bin(&[Column::Plain(x)]))
    }

    #[test]
    fn fits_a_step_function() {
        let x: Vec<f64> = (0..1000).map(|i| f64::from(i) / 1000.0).collect();
        let y: Vec<f64> = x.iter().map(|&v| if v < 0.3 { 1.0 } else { 5.0 }).collect();
        let (binner, model) = fit_plain(&x, &y);
        let p = predict_plain(&binner, &model, &[0.1, 0.25, 0.35, 0.9]);
        // 100 rounds of shrinkage 0.1 leave 0.9^100 of the initial
        // residual: the step is recovered to far below 1e-3.
        for (got, want) in p.iter().zip([1.0, 1.0, 5.0, 5.0]) {
            assert!((got - want).abs() < 1e-3, "{p:?}");
        }
    }

    #[test]
    fn fits_a_linear_function() {
        let x: Vec<f64> = (0..2000).map(|i| f64::from(i) / 200.0).collect();
        let y: Vec<f64> = x.iter().map(|&v| 2.0 * v - 3.0).collect();
        let (binner, model) = fit_plain(&x, &y);
        let probe: Vec<f64> = (1..20).map(|i| f64::from(i) * 0.5).collect();
        for (v, p) in probe.iter().zip(predict_plain(&binner, &model, &probe)) {
            // Piecewise constant over at most 255 bins of width ~0.04.
            assert!((p - (2.0 * v - 3.0)).abs() < 0.1, "f({v}) = {p}");
        }
        // The training mean is kept (L2 leaves are means of residuals).
        let fitted = predict_plain(&binner, &model, &x);
        let mean_fit = fitted.iter().sum::<f64>() / 2000.0;
        let mean_y = y.iter().sum::<f64>() / 2000.0;
        assert!((mean_fit - mean_y).abs() < 1e-9);
    }

    #[test]
    fn missing_values_and_categories_get_their_own_side() {
        // Enough rows that a leaf of the missing rows still has 100 of a
        // category (`min_data_per_group`): with fewer, LightGBM cannot
        // isolate a category below the first split either.
        let n = 3000;
        let mut x = Vec::with_capacity(n);
        let mut cat = Vec::with_capacity(n);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let missing = i % 5 == 0;
            x.push((!missing).then_some((i % 50) as f64));
            let c = ["a", "b", "c", "d", "e", "f"][i % 6];
            cat.push(Some(c.to_string()));
            // Missing x and category "e" each add a lot.
            y.push(if missing { 10.0 } else { 0.0 } + if c == "e" { 4.0 } else { 0.0 });
        }
        let params = Params::default();
        let columns = [Column::Numeric(&x), Column::Categorical(&cat)];
        let binner = Binner::fit(&columns, &params);
        let model = Gbdt::fit(&binner, &binner.bin(&columns), &y, &params);
        let probe_x = [None, Some(3.0), None, Some(3.0), Some(3.0)];
        let probe_c = ["e", "e", "a", "a", "zzz"].map(|s| Some(s.to_string()));
        let p =
            model.predict(&binner.bin(&[Column::Numeric(&probe_x), Column::Categorical(&probe_c)]));
        for (got, want) in p.iter().zip([14.0, 4.0, 10.0, 0.0, 0.0]) {
            assert!((got - want).abs() < 0.05, "{p:?}");
        }
    }

    #[test]
    fn bins_are_at_most_max_bin_and_cut_between_values() {
        let mut many: Vec<f64> = (0..10_000).map(|i| f64::from(i % 5000)).collect();
        let upper = numeric_bounds(&mut many, &Params::default());
        assert!(upper.len() <= 254 && upper.len() > 200, "{}", upper.len());
        assert!(upper.iter().all(|b| b.fract() == 0.5));
        let mut few = vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0];
        assert_eq!(numeric_bounds(&mut few, &Params::default()), vec![1.5, 2.5]);
    }
}
