{{--
    examples/laravel/resources/views/components/pollgate/watch.blade.php — <x-pollgate.watch>: replaces
    `wire:poll.10s` in the view of a Livewire component that shows one run or one review pack.

    Place it INSIDE the component's root element. It renders nothing visible: an Alpine component
    (resources/js/pollgate-livewire.js) that long-polls pollgate and calls $wire.$refresh() when the state
    the view shows changed, pauses while a Filament action is mounted, and stops at `poll: null`.

    Props:
      url       the resource on this origin, e.g. '/pollgate/v1/runs/42'
      kind      'run' or 'review_pack'
      rendered  the key of what this render shows, computed like KEYS in pollgate-livewire.js:
                run: "{status}|{outcome}", review pack: "{id}|{status}", or "none"
      token     a short-lived JWT (data-attribute mode); leave null in cookie mode
      renewUrl  the route that issues a fresh credential when the token expires (optional)

    The wire:key carries the rendered key: when a refresh renders a new state, Livewire replaces this
    element, Alpine runs destroy() on the old watcher and init() on a new one that starts from the new
    key. While the key stays the same the element (and its long-poll) is kept across re-renders.
--}}
@props(['url', 'kind' => 'run', 'rendered', 'token' => null, 'renewUrl' => null])

<div
    hidden
    wire:key="pollgate-{{ $kind }}-{{ md5($url . '#' . $rendered) }}"
    x-data="pollgateRefresh(@js(array_filter([
        'url' => $url,
        'kind' => $kind,
        'rendered' => $rendered,
        'token' => $token,
        'renewUrl' => $renewUrl,
    ], fn ($v) => $v !== null)))"
></div>
