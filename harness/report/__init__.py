"""Reports: the test-case catalogue, conformance.json and the HTML reports a run writes."""
