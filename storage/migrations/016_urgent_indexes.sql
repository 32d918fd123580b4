-- The storm's look for held incidents that should get their own card (at every look of the
-- delivery worker) starts from these few rows, not from the thousands of held cards.
CREATE INDEX incidents_critical ON incidents(status) WHERE lower(severity) = 'critical';
CREATE INDEX decisions_risky ON decisions(state)
    WHERE state = 'pending' AND json_extract(proposal, '$.action') IS NOT NULL
      AND json_extract(proposal, '$.risk') IN ('high', 'critical');
