# No data-quality breach: in the version's newest evaluation
# (`input.data_quality`, one entry per tested feature; see
# docs/monitoring.md, "Data quality"), no feature may have more missing,
# mistyped, out-of-range or unseen values than these shares. The
# evaluation must exist and be recent.
package modelwatch.gate

limits := {
	"missing_share": 0.05,
	"type_mismatch_share": 0.0,
	"out_of_range_share": 0.05,
	"unseen_share": 0.05,
}

max_age_seconds := 86400

deny contains "no data quality measured yet: set a monitoring policy and send inferences and reference data" if {
	not input.data_quality
}

deny contains msg if {
	input.data_quality.age_seconds > max_age_seconds
	msg := sprintf("the newest data-quality measurement is %v s old (at most %v)", [input.data_quality.age_seconds, max_age_seconds])
}

deny contains msg if {
	some feature, measures in input.data_quality.features
	some measure, limit in limits
	value := measures[measure]
	is_number(value)
	value > limit
	msg := sprintf("%s: %s is %v, above %v", [feature, measure, value, limit])
}
