<?php

// examples/laravel/app/Livewire/ReviewPackCard.php — a tenant's review-pack card with a Filament action
// ("Generate pack") whose modal the Alpine glue's modal guard protects. The card shows the tenant's latest
// pack by the same rule pollgate serves it: highest created_at, then highest id.

namespace App\Livewire;

use App\Models\Tenant;
use App\Support\PollgateToken;
use Filament\Actions\Action;
use Filament\Actions\Concerns\InteractsWithActions;
use Filament\Actions\Contracts\HasActions;
use Filament\Forms\Concerns\InteractsWithForms;
use Filament\Forms\Contracts\HasForms;
use Livewire\Component;

final class ReviewPackCard extends Component implements HasActions, HasForms
{
    use InteractsWithActions;
    use InteractsWithForms;

    public Tenant $tenant;

    public function generateAction(): Action
    {
        return Action::make('generate')
            ->label('Generate pack')
            ->requiresConfirmation()
            ->action(fn () => $this->tenant->reviewPacks()->create(['status' => 'queued']));
    }

    public function render()
    {
        $pack = $this->tenant->reviewPacks()
            ->orderByDesc('created_at')
            ->orderByDesc('id')
            ->first();

        return view('livewire.review-pack-card', [
            'pack' => $pack,
            'pollgateToken' => config('pollgate.credential') === 'header'
                ? PollgateToken::mint((int) auth()->id())
                : null,
        ]);
    }
}
