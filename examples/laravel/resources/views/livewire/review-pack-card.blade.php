{{--
    examples/laravel/resources/views/livewire/review-pack-card.blade.php — a tenant's review-pack card, once
    `<div wire:poll.10s>`. pollgate serves the tenant's LATEST pack (highest created_at, then id), so the
    component must show that same pack: $pack = $tenant->reviewPacks()->latest()->orderByDesc('id')->first().

    When a Filament action on this card (e.g. "Generate pack") opens its modal, the watcher pauses; when the
    action creates a new pack, the refresh renders a new key and a new watcher starts on it. A finished pack
    (ready, failed, expired) or no pack at all is `poll: null`: nothing is requested until the card changes.
--}}
<div>
    <x-filament::section>
        <x-slot name="heading">Review pack</x-slot>

        @if ($pack)
            <p>Status: {{ $pack->status }}</p>
            @if ($pack->status === 'ready')
                <p>Generated {{ $pack->generated_at?->diffForHumans() }}, {{ number_format($pack->file_size ?? 0) }} bytes</p>
            @endif
        @else
            <p>No review pack yet.</p>
        @endif

        {{ $this->generateAction }}
    </x-filament::section>

    <x-filament-actions::modals />

    <x-pollgate.watch
        :url="'/pollgate/v1/tenants/' . $tenant->id . '/review-pack'"
        kind="review_pack"
        :rendered="$pack ? $pack->id . '|' . $pack->status : 'none'"
        :token="$pollgateToken"
        :renew-url="route('pollgate.token')"
    />
</div>
