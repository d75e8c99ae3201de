# The four-fifths rule: for every sensitive attribute the monitoring policy
# names, the lowest group's selection rate must be at least 80 % of the
# highest's (`input.fairness`, see docs/monitoring.md, "Fairness"). The
# assessment must exist and be recent.
package modelwatch.gate

min_ratio := 0.8

max_age_seconds := 86400

deny contains "no fairness assessment yet: set a fairness policy and send inferences with the sensitive attributes" if {
	not input.fairness
}

deny contains msg if {
	input.fairness.age_seconds > max_age_seconds
	msg := sprintf("the newest fairness assessment is %v s old (at most %v)", [input.fairness.age_seconds, max_age_seconds])
}

deny contains msg if {
	some attribute, figures in input.fairness.attributes
	not figures.disparate_impact_ratio
	msg := sprintf("no group of %s was ever selected: the disparate impact ratio is undefined", [attribute])
}

deny contains msg if {
	some attribute, figures in input.fairness.attributes
	figures.disparate_impact_ratio < min_ratio
	msg := sprintf("disparate impact ratio for %s is %v, below the four-fifths rule's %v", [attribute, figures.disparate_impact_ratio, min_ratio])
}
