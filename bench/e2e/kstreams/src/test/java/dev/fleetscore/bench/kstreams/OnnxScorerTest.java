package dev.fleetscore.bench.kstreams;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class OnnxScorerTest {
    @Test
    void scoresThePackagesGoldenRowsOneByOne(@TempDir Path tmp) throws Exception {
        assumeTrue(TestModels.available(), "no published models next to this project");
        ModelPackage model = TestModels.load(tmp);
        JsonNode golden = new ObjectMapper().readTree(
                TestModels.engineRulDir().resolve("golden.json").toFile());
        double tolerance = TestModels.manifest().path("golden").path("tolerance").asDouble();
        try (OnnxScorer scorer = new OnnxScorer(model, 1)) {
            // One after another through the same input buffer: each call sees its own row.
            for (int i = 0; i < golden.get("inputs").size(); i++) {
                JsonNode row = golden.get("inputs").get(i);
                float[] features = new float[row.size()];
                for (int j = 0; j < features.length; j++) {
                    features[j] = (float) row.get(j).asDouble();
                }
                assertEquals(golden.get("outputs").get(i).asDouble(), scorer.score(features), tolerance,
                        "golden row " + i);
            }
        }
    }
}
