"""Issue 20: RX-399's map says what its markers are (a legend of the counted kinds)."""

from __future__ import annotations

from openvirl.agents.urban import UrbanCounter, UrbanCounterConfig, kind_colour
from openvirl.world import maps
from world_fixtures import load_city


def test_rx399_map_has_a_legend_of_the_counted_kinds(tmp_path, monkeypatch):
    legends: list[list[str]] = []
    finish = maps.finish_map

    def capture(fig, ax, *args, **kwargs):
        legend = ax.get_legend()
        legends.append([t.get_text() for t in legend.get_texts()] if legend else [])
        return finish(fig, ax, *args, **kwargs)

    monkeypatch.setattr(maps, "finish_map", capture)
    config = UrbanCounterConfig(
        city="helsinki", start="Kauppatori", end="Stockmann", kinds=["bench", "waste_basket"]
    )
    result = UrbanCounter(config, city=load_city("helsinki")).run(out_dir=tmp_path)
    counts = result.data["counts"]
    main = legends[0]  # map.png is drawn first, then one heatmap per kind
    assert main[:2] == ["walk", "start"]
    assert main[2:] == [f"bench ({counts['bench']})", f"waste basket ({counts['waste_basket']})"]
    assert kind_colour("bench") != kind_colour("waste_basket")
