package dev.fleetscore.bench.kstreams;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * A published model package ({@code models/engine-rul/<version>}: {@code manifest.json} and
 * the ONNX file it names, whose SHA-256 must match), checked against what this peer computes:
 * the manifest must be for the {@code engine-health} feature set at the version fleetscore reports
 * ({@code fleetscore feature-sets}), with the same ordered features as {@link
 * EngineHealthFeatures#NAMES}. Loaded once at start-up, so a mismatch stops the peer before it
 * consumes anything.
 */
record ModelPackage(
        String name,
        String version,
        String sha256,
        Path modelFile,
        String inputName,
        String outputName,
        int outputColumn,
        String featureSetVersion) {

    static ModelPackage load(Path modelDir, Path featureSetsJson) throws IOException {
        ObjectMapper json = new ObjectMapper();
        JsonNode manifest = json.readTree(modelDir.resolve("manifest.json").toFile());

        JsonNode health = null;
        for (JsonNode set : json.readTree(featureSetsJson.toFile())) {
            if (EngineHealthFeatures.NAME.equals(set.path("name").asText())) {
                health = set;
            }
        }
        if (health == null) {
            throw new IllegalArgumentException(featureSetsJson + " has no engine-health feature set");
        }
        String setVersion = health.path("version").asText();
        JsonNode wanted = manifest.path("feature_set");
        if (!EngineHealthFeatures.NAME.equals(wanted.path("name").asText())
                || !setVersion.equals(wanted.path("version").asText())) {
            throw new IllegalArgumentException("the model is for " + wanted
                    + ", fleetscore computes engine-health " + setVersion);
        }
        if (!EngineHealthFeatures.NAMES.equals(names(health.path("features"), true))) {
            throw new IllegalArgumentException(
                    "fleetscore's engine-health features differ from what this peer computes");
        }
        if (!EngineHealthFeatures.NAMES.equals(names(manifest.path("input").path("features"), false))) {
            throw new IllegalArgumentException("the model's feature list differs from engine-health's");
        }

        Path modelFile = modelDir.resolve(require(manifest, "model_file"));
        String sha256 = require(manifest, "sha256");
        if (!sha256.equals(sha256Of(modelFile))) {
            throw new IllegalArgumentException(modelFile + " does not match the manifest's sha256");
        }
        JsonNode output = manifest.path("output");
        return new ModelPackage(
                require(manifest, "name"),
                require(manifest, "version"),
                sha256,
                modelFile,
                require(manifest.path("input"), "name"),
                output.path("name").asText("variable"),
                output.path("column").asInt(0),
                setVersion);
    }

    private static List<String> names(JsonNode features, boolean objects) {
        List<String> names = new ArrayList<>();
        for (JsonNode f : features) {
            names.add(objects ? f.path("name").asText() : f.asText());
        }
        return names;
    }

    private static String sha256Of(Path file) throws IOException {
        try {
            return HexFormat.of().formatHex(
                    MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JVM has SHA-256", e);
        }
    }

    private static String require(JsonNode node, String field) {
        JsonNode v = node.get(field);
        if (v == null || !v.isTextual()) {
            throw new IllegalArgumentException("manifest: missing text field " + field);
        }
        return v.asText();
    }
}
