{{--
    examples/laravel/resources/views/livewire/operation-run-detail.blade.php — the run detail view, once
    `<div wire:poll.10s>`: the same markup, refreshed by pollgate instead of every 10 seconds.

    Before:  <div wire:poll.10s> ... </div>
    After:   <div> ... <x-pollgate.watch ... /> </div>

    $run is the component's OperationRun model; $pollgateToken comes from the component (PollgateToken::mint)
    and is null in cookie mode.
--}}
<div>
    <dl class="run-detail">
        <dt>Type</dt>      <dd>{{ $run->type }}</dd>
        <dt>Status</dt>    <dd>{{ $run->status }}@if ($run->outcome) ({{ $run->outcome }})@endif</dd>
        <dt>Progress</dt>  <dd>{{ data_get($run->summary_counts, 'processed', 0) }} / {{ data_get($run->summary_counts, 'total', '?') }}</dd>
        <dt>Started</dt>   <dd>{{ $run->started_at?->diffForHumans() ?? '—' }}</dd>
        <dt>Completed</dt> <dd>{{ $run->completed_at?->diffForHumans() ?? '—' }}</dd>
    </dl>

    <x-pollgate.watch
        :url="'/pollgate/v1/runs/' . $run->id"
        kind="run"
        :rendered="$run->status . '|' . ($run->outcome ?? '')"
        :token="$pollgateToken"
        :renew-url="route('pollgate.token')"
    />
</div>
