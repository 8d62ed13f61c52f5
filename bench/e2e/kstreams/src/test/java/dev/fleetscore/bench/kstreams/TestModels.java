package dev.fleetscore.bench.kstreams;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** The repository's published engine-rul package, and a feature-sets file to go with it. */
final class TestModels {
    private static final ObjectMapper JSON = new ObjectMapper();

    private TestModels() {}

    static Path engineRulDir() {
        String dir = System.getProperty("fleet.models.dir", "../../../models");
        return Path.of(dir, "engine-rul", "1");
    }

    static JsonNode manifest() throws IOException {
        return JSON.readTree(engineRulDir().resolve("manifest.json").toFile());
    }

    /** What `fleetscore feature-sets` prints, for engine-health at the manifest's version. */
    static Path featureSets(Path dir) throws IOException {
        ObjectNode set = JSON.createObjectNode();
        set.put("name", EngineHealthFeatures.NAME);
        set.put("version", manifest().path("feature_set").path("version").asText());
        ArrayNode features = set.putArray("features");
        for (String name : EngineHealthFeatures.NAMES) {
            features.addObject().put("name", name).put("definition", "");
        }
        Path file = dir.resolve("feature-sets.json");
        JSON.writeValue(file.toFile(), JSON.createArrayNode().add(set));
        return file;
    }

    static ModelPackage load(Path tmp) throws IOException {
        return ModelPackage.load(engineRulDir(), featureSets(tmp));
    }

    static boolean available() {
        return Files.isRegularFile(engineRulDir().resolve("manifest.json"));
    }
}
