# No open rollback recommendation: a version that the evaluator (or a
# person) recommended rolling back away from is not promoted again until
# the recommendation is applied or dismissed. An open retrain
# recommendation only warns.
package modelwatch.gate

deny contains msg if {
	some r in input.recommendations
	r.kind == "rollback"
	r.status == "open"
	msg := sprintf("open rollback recommendation %v: %s", [r.id, r.reason])
}

warn contains msg if {
	some r in input.recommendations
	r.kind == "retrain"
	r.status == "open"
	msg := sprintf("open retrain recommendation %v: %s", [r.id, r.reason])
}
