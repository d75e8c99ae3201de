# Minimum realized performance: the version's newest performance
# measurement (`input.performance`, from labelled inferences; see
# docs/monitoring.md, "Realized performance") must exist, be recent, rest on
# enough labels, and reach each minimum.
package modelwatch.gate

minimums := {"roc_auc": 0.80}

min_labels := 500

max_age_seconds := 86400

deny contains "no realized performance yet: set a performance policy and send labelled inferences" if {
	not input.performance
}

deny contains msg if {
	input.performance.age_seconds > max_age_seconds
	msg := sprintf("the newest realized performance is %v s old (at most %v)", [input.performance.age_seconds, max_age_seconds])
}

deny contains msg if {
	input.performance.labelled_rows < min_labels
	msg := sprintf("realized performance rests on %v labelled rows (needs %v)", [input.performance.labelled_rows, min_labels])
}

deny contains msg if {
	some name, minimum in minimums
	input.performance
	not input.performance.metrics[name]
	msg := sprintf("realized %s was not measured (needs at least %v)", [name, minimum])
}

deny contains msg if {
	some name, minimum in minimums
	value := input.performance.metrics[name]
	value < minimum
	msg := sprintf("realized %s is %v, below the minimum %v", [name, value, minimum])
}
