"""`bench node` results: headline summary, markdown page and README lines (reporting side).

Latencies are summarised by the package's one `latency_summary_ms`. Node overhead is, per set
sent one at a time (nothing queues), end to end minus that set's inference in the node, as a
median, minus the relay's median floor; the node's in-node figure (set complete -> published,
minus inference, per set) is shown beside it, and its per-phase medians say where time goes.
"""

from pathlib import Path

from stereo_derain_ros.bench.results import (
    format_number,
    markdown_table,
    report_head,
    targets_section,
)
from stereo_derain_ros.node_stats import latency_summary_ms, PHASES


def _p50(latencies_ms: list[float]) -> float | None:
    return latency_summary_ms(value / 1000.0 for value in latencies_ms)['p50']


def _number(diagnostics: dict[str, str], key: str) -> float | None:
    value = diagnostics.get(key, 'n/a')
    return None if value == 'n/a' else float(value)


def size_rows(result: dict) -> list[dict]:
    """Return per size: latency p50, inference p50, floor p50 and the overheads (ms)."""
    relays = {row['size']: row for row in result['relay_runs']}
    rows = []
    for node in result['node_runs']:
        latency = _p50(node['ping_latencies_ms'])
        inference = _number(node['diagnostics'], 'inference_latency_p50_ms')
        floor = _p50(relays[node['size']]['ping_latencies_ms']) if node['size'] in relays \
            else None
        sets = [one for one in node.get('ping_sets', []) if 'inference_ms' in one]
        beyond_inference = _p50([one['latency_ms'] - one['inference_ms'] for one in sets])
        overhead = None
        if None not in (beyond_inference, floor):
            overhead = beyond_inference - floor
        rows.append({'size': node['size'], 'latency_p50_ms': latency,
                     'inference_p50_ms': inference, 'floor_p50_ms': floor,
                     'overhead_p50_ms': overhead,
                     'in_node_overhead_p50_ms': _number(node['diagnostics'],
                                                        'processing_overhead_p50_ms'),
                     'engine_alone_ms': result['engine'][node['size']]['median_ms'],
                     'phases_p50_ms': {phase: _number(node['diagnostics'],
                                                      f'phase_{phase}_p50_ms')
                                       for phase in PHASES},
                     **{f'{part}_p50_ms': _p50([one[f'{part}_ms'] for one in sets])
                        for part in ('reception', 'delivery')}})
    return rows


def summarise(result: dict) -> dict:
    """Return the headline numbers that the targets and the README use."""
    rows = size_rows(result)
    largest, smallest = rows[-1], rows[0]
    node = result['node_runs'][-1]
    transport, soak = node.get('transport', {}), node.get('soak', {})
    relay_transport = result['relay_runs'][-1].get('transport', {})
    return {
        'model': result['settings']['model'] or 'default', 'size': largest['size'],
        'sizes': rows,
        'relay_floor_p50_ms': largest['floor_p50_ms'],
        'overhead_p50_ms': largest['overhead_p50_ms'],
        'overhead_p50_ms_smallest': smallest['overhead_p50_ms'],
        'lost_in_transport': transport.get('lost_in_transport'),
        'transport_sent': transport.get('sent'),
        'transport_published': transport.get('received'),
        'output_rate_hz': transport.get('throughput_hz'),
        'relay_lost': (relay_transport['sent'] - relay_transport['received']
                       if relay_transport else None),
        'soak_rss_growth_mb': soak.get('rss_growth_mb'),
        'soak_rss_low_growth_mb': soak.get('rss_low_growth_mb'),
        'soak_rate_hz': soak.get('rate_hz'),
    }


def _size_table(summary: dict) -> str:
    headers = ['size', 'engine alone ms', 'node end to end p50 ms', 'inference in node p50 ms',
               'relay floor p50 ms', 'node overhead p50 ms', 'in-node overhead p50 ms']
    keys = ['engine_alone_ms', 'latency_p50_ms', 'inference_p50_ms', 'floor_p50_ms',
            'overhead_p50_ms', 'in_node_overhead_p50_ms']
    return markdown_table(headers, [[row['size'], *(format_number(row[key]) for key in keys)]
                                    for row in summary['sizes']])


def _phase_table(summary: dict) -> str:
    headers = ['size', 'reception p50 ms', *(f'{phase} p50 ms' for phase in PHASES),
               'delivery p50 ms']
    return markdown_table(headers, [
        [row['size'], format_number(row.get('reception_p50_ms')),
         *(format_number(row.get('phases_p50_ms', {}).get(phase)) for phase in PHASES),
         format_number(row.get('delivery_p50_ms'))] for row in summary['sizes']])


def _run_table(result: dict) -> str:
    headers = ['run', 'rate Hz', 'sent', 'published', 'latency p50 ms', 'p95 ms', 'max ms',
               'CPU % (of one core)', 'RSS max MB']
    node, relay = result['node_runs'][-1], result['relay_runs'][-1]
    runs = [('node, transport', node.get('transport')), ('node, memory soak', node.get('soak')),
            ('relay, transport', relay.get('transport'))]
    return markdown_table(headers, [
        [name, format_number(row['rate_hz']), str(row['sent']), str(row['received']),
         format_number(row['latency_p50_ms']), format_number(row['latency_p95_ms']),
         format_number(row['latency_max_ms']), format_number(row['cpu_percent']),
         format_number(row['rss_max_mb'])] for name, row in runs if row])


def node_markdown(result: dict) -> str:
    """Render a `bench node` result as markdown."""
    summary, settings = result['summary'], result['settings']
    weights = 'untrained' if not settings['weights'] else 'trained'
    transport = result['node_runs'][-1].get('transport', {})
    images_sent = 2 * (summary['transport_sent'] or 0)
    profile = Path(result['ros']['fastdds_profile']).name or 'none'
    lines = [*report_head('Node benchmark (`stereo-derain bench node`)', result['machine']),
             f"Model `{summary['model']}` ({weights} weights), torch threads in the node: "
             f"{settings['threads']}; rgb8 stereo sets (a pre-loaded rainy pair + camera_info, "
             f"fresh stamps per set) published over DDS ({result['ros']['rmw']}, localhost, "
             f"Fast DDS profile `{profile}`) by a player; "
             'the node keeps its default QoS (sensor data, best effort); a monitor matches '
             'outputs to inputs by header stamp. Player, monitor, node and relay share the '
             "machine's cores.", '',
             f"## Latency (sets sent one at a time, {settings['pings']} per size)", '',
             _size_table(summary), '',
             'Node overhead = per set, end to end − its inference in the node (median over '
             'the sets) − relay floor (median); '
             'in-node overhead = per set, set complete → published minus inference.', '',
             "Where a set's time goes (medians per part; the node's diagnostics for the "
             'phases in the node): reception = the player sends → the set is complete in the '
             'node, wait = complete → processing starts, decode = messages → arrays, encode = '
             'arrays → messages, publish = handing the outputs to DDS, delivery = published → '
             'both outputs at the monitor. The relay floor covers reception and delivery '
             'of a relay.', '',
             _phase_table(summary), '',
             '## Transport, throughput and memory (largest size)', '', _run_table(result), '',
             f"- Images lost in transport (sent by the player − received by the node, from its "
             f"diagnostics): {summary['lost_in_transport']} of {images_sent}"
             f" ({transport.get('node_received')}); sets published "
             f"{summary['transport_published']} of {summary['transport_sent']}: the rest were "
             'superseded by newer sets while the node was busy (newest wins), not lost.',
             f"- Memory soak at {format_number(summary['soak_rate_hz'])} Hz: highest RSS of the "
             f"last quarter − of the first quarter after warm-up "
             f"{format_number(summary['soak_rss_growth_mb'])} MB (lowest: "
             f"{format_number(summary['soak_rss_low_growth_mb'])} MB).",
             '', *targets_section(result['targets'])]
    return '\n'.join(lines)


def readme_lines(result: dict, machine_line: str) -> list[str]:
    """Return the README's node paragraph."""
    summary = result['summary']
    sizes = '; '.join(
        f"{row['size']}: end to end p50 {format_number(row['latency_p50_ms'])} ms, inference "
        f"{format_number(row['inference_p50_ms'])} ms, floor {format_number(row['floor_p50_ms'])}"
        f" ms, overhead {format_number(row['overhead_p50_ms'])} ms" for row in summary['sizes'])
    return [f"**Node** ({summary['model']} through DDS with the shipped Fast DDS profile, "
            f'{machine_line}): {sizes}. At {summary["size"]} and '
            f"{format_number(result['settings']['transport_rate_hz'])} Hz: "
            f"{summary['lost_in_transport']} images lost in transport, "
            f"{format_number(summary['output_rate_hz'])} sets/s out (newest wins); RSS growth "
            f"over the soak {format_number(summary['soak_rss_growth_mb'])} MB.", '']
