package dev.fleetscore.bench.kstreams;

/**
 * What the feature step hands to the scoring step, inside one task (never serialized): the
 * event and its engine-health feature vector.
 */
record FeatureRow(TelemetryEvent event, float[] features) {}
